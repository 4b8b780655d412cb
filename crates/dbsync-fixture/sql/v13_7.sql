-- Deltas of 13.7.2.x (stage_two 50) over 13.6: `epoch` becomes a view over the finalized
-- epochs (a table) plus a live aggregate of the running epoch. The live half scans block ⋈ tx
-- on every read, which is why the exporter must never select from `epoch` on 13.7.2+.
DROP TABLE epoch;

CREATE TABLE epoch_finalized (
    id bigserial PRIMARY KEY,
    out_sum word128type NOT NULL,
    fees lovelace NOT NULL,
    tx_count word31type NOT NULL,
    blk_count word31type NOT NULL,
    no word31type NOT NULL,
    start_time timestamp NOT NULL,
    end_time timestamp NOT NULL,
    CONSTRAINT unique_epoch_finalized UNIQUE (no)
);

CREATE VIEW epoch_current AS
SELECT b.epoch_no::bigint AS no,
       COALESCE(sum(t.out_sum), 0)::numeric AS out_sum,
       COALESCE(sum(t.fee), 0)::numeric AS fees,
       count(t.id)::bigint AS tx_count,
       count(DISTINCT b.id)::bigint AS blk_count,
       min(b.time) AS start_time,
       max(b.time) AS end_time
FROM block b
LEFT JOIN tx t ON t.block_id = b.id
WHERE b.epoch_no = (SELECT max(epoch_no) FROM block)
  AND NOT EXISTS (SELECT 1 FROM epoch_finalized f WHERE f.no = b.epoch_no)
GROUP BY b.epoch_no;

CREATE VIEW epoch AS
SELECT id, out_sum::numeric AS out_sum, fees::numeric AS fees, tx_count::bigint AS tx_count,
       blk_count::bigint AS blk_count, no::bigint AS no, start_time, end_time
FROM epoch_finalized
UNION ALL
SELECT NULL::bigint, out_sum, fees, tx_count, blk_count, no, start_time, end_time
FROM epoch_current;
