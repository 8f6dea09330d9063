-- A tombstone keeps the filter columns (source_id, remote_id, status, type,
-- event_id) its record had, and the links to it that the record declared,
-- so that a sync client listing with includeDeleted=true and a filter (or
-- an event manager's key) sees the deletion of every record it saw. Only
-- its data and search text are gone.
--
-- The sourceId and remoteId pair is unique among live records only, so
-- that a new record may take the pair of a deleted one.
--
-- Tombstones written before this version had those columns cleared and
-- their links removed when they were deleted. Nothing in the file keeps
-- what they held (the last change event that did may be pruned), so they
-- cannot be restored: a filtered list never shows them, only an unfiltered
-- list with includeDeleted=true does.
DROP INDEX records_source_remote;
CREATE UNIQUE INDEX records_source_remote ON records (source_id, remote_id)
	WHERE source_id IS NOT NULL AND remote_id IS NOT NULL AND deleted_at IS NULL;
