-- 0008: placeholder on branch "pickup" only, so that its migration 0010 loads (numbers must run
-- without gaps). Replace it with the real 0008 of the branch that owns that number when merging.
SELECT 1;
