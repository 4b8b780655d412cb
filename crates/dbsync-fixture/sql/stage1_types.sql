-- Stage 1 (db-sync `schema/migration-1-*.sql`): SQL domains and enums.
-- The 13.2 set; `proposal_refund` is added to `rewardtype` by v13_3.sql, as db-sync's own
-- migration did, so a fresh 13.3+ database has the same enum order as an upgraded one.
CREATE DOMAIN lovelace AS numeric(20, 0) CHECK (VALUE >= 0 AND VALUE <= 18446744073709551615);
CREATE DOMAIN word31type AS integer CHECK (VALUE >= 0);
CREATE DOMAIN word63type AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN word64type AS numeric(20, 0) CHECK (VALUE >= 0 AND VALUE <= 18446744073709551615);
CREATE DOMAIN word128type AS numeric(39, 0)
    CHECK (VALUE >= 0 AND VALUE <= 340282366920938463463374607431768211455);
CREATE DOMAIN outsum AS word128type;
CREATE DOMAIN int65type AS numeric(20, 0)
    CHECK (VALUE >= -18446744073709551615 AND VALUE <= 18446744073709551615);
CREATE DOMAIN hash32type AS bytea CHECK (octet_length(VALUE) = 32);
CREATE DOMAIN hash28type AS bytea CHECK (octet_length(VALUE) = 28);
CREATE DOMAIN addr29type AS bytea CHECK (octet_length(VALUE) = 29);
CREATE DOMAIN asset32type AS bytea CHECK (octet_length(VALUE) <= 32);
CREATE DOMAIN txindex AS smallint CHECK (VALUE >= 0);

CREATE TYPE rewardtype AS ENUM ('leader', 'member', 'reserves', 'treasury', 'refund');
CREATE TYPE syncstatetype AS ENUM ('lagging', 'following');
