-- The full-text index is keyed by each record's position in the change
-- order (records.seq) instead of its row id, so that a search is read in
-- the order lists run and stops at the end of a page. Its text is rebuilt
-- from the searchable fields of each collection as they are in this
-- version: names, and a person's e-mail.
INSERT INTO records_fts (records_fts) VALUES ('delete-all');
INSERT INTO records_fts (rowid, text)
SELECT seq, text FROM (
	SELECT seq, CASE collection
		WHEN 'people' THEN concat_ws(' ', json_extract(data, '$.firstName'),
			json_extract(data, '$.lastName'), json_extract(data, '$.email'))
		WHEN 'tickets' THEN json_extract(data, '$.ticketType')
		ELSE json_extract(data, '$.name')
	END AS text
	FROM records WHERE deleted_at IS NULL
) WHERE text IS NOT NULL AND text != '';
