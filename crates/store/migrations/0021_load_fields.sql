-- A load's per-field summary (JSON): each field's values with their counts, and the values
-- no role or team rule condition names, kept so the history shows what a load looked like.
ALTER TABLE hr_loads ADD COLUMN fields TEXT;
