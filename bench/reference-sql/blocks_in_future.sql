-- dbsync_blocks_in_future: blocks more than 60 s after now (block.time is UTC, no zone).
SELECT count(*) FROM block WHERE time > (now() AT TIME ZONE 'UTC') + interval '60 s';
