-- Real HR exports: a refused file is recorded too (an auditor must see that the 06:00 file
-- failed, and why), and a load may take an earlier one again.
ALTER TABLE hr_loads ADD COLUMN outcome TEXT NOT NULL DEFAULT 'accepted';
ALTER TABLE hr_loads ADD COLUMN reason TEXT;
