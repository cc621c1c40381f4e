"""Job lifecycle bookkeeping shared by every step."""
