-- Reviewer proof: each reviewer holds a secret token (issued by `tunesmith reviewers add` or
-- `reviewers rotate`); a decision counts only when it carries HMAC(token, job, reviewer,
-- decision). The server keeps the token to check the HMAC; reviewers from before this
-- migration have none and must be given one (`tunesmith reviewers rotate NAME`).
ALTER TABLE reviewers ADD COLUMN proof_key text;
