#!/usr/bin/env python3
"""bench/peers/pacs_to_cama.py — the PACS -> CAMA sync a county would write instead of
tfsyncd: the mapping in SQL (tests/integration/sql/pacs_to_cama_pardat.sql and
pacs_to_cama_asmt.sql) read through a server-side cursor (a psycopg2 named cursor) and
upserted into CAMA's pardat and asmt with psycopg2.extras.execute_values, 5,000 rows per
transaction. No sync map, no audit, no three-way merge: the floor of a hand-written script.

    pacs_to_cama.py --source 'dbname=pacs' --target 'dbname=cama' [--roll-year 2026]
                    [--sql-dir tests/integration/sql] [--batch 5000]

Connection strings are libpq's (PGHOST, PGPORT and PGUSER apply). Prints one line per table
to stderr with its rows and the seconds spent reading (fetching the mapped rows) and
writing (execute_values + commit), and a last line "total_ms N" to stdout.
"""
import argparse
import os
import sys
import time

import psycopg2
import psycopg2.extras

PARDAT_COLS = ["parid", "taxyr", "seq", "cur", "class", "luc", "nbhd", "acres", "adrno",
               "adradd", "adrdir", "adrstr", "adrsuf", "unitno", "cityname", "statecode",
               "postalcode", "zoning", "deactivat"]
ASMT_COLS = ["parid", "taxyr", "seq", "cur", "valclass", "valapr1", "valapr2", "valapr3",
             "valasm1", "valasm2", "valasm3", "deactivat"]


def primary_key(cur, table):
    cur.execute("""
        SELECT a.attname
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = %s::regclass AND i.indisprimary
        ORDER BY k.n""", (table,))
    key = [r[0] for r in cur.fetchall()]
    if not key:
        sys.exit(f"pacs_to_cama.py: {table} has no primary key to upsert on")
    return key


def mapping_sql(sql_dir, table, roll_year):
    with open(os.path.join(sql_dir, f"pacs_to_cama_{table}.sql"), encoding="utf-8") as f:
        text = f.read()
    # The files use psql's :roll_year; the year is an integer, checked by argparse.
    return text.replace(":roll_year", str(roll_year))


def sync_table(src, dst, sql_dir, table, cols, roll_year, batch):
    with dst.cursor() as cur:
        key = primary_key(cur, table)
    dst.commit()
    rest = [c for c in cols if c not in key]
    upsert = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES %s "
              f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
              + ", ".join(f"{c} = EXCLUDED.{c}" for c in rest))
    read_s = write_s = 0.0
    rows = 0
    # A named cursor is a server-side cursor: rows come in batches, never all at once.
    with src.cursor(name=f"peer_{table}") as cur:
        cur.itersize = batch
        t = time.monotonic()
        cur.execute(mapping_sql(sql_dir, table, roll_year))
        while True:
            chunk = cur.fetchmany(batch)
            t1 = time.monotonic()
            read_s += t1 - t
            if not chunk:
                break
            with dst.cursor() as w:
                psycopg2.extras.execute_values(w, upsert, chunk, page_size=batch)
            dst.commit()
            t = time.monotonic()
            write_s += t - t1
            rows += len(chunk)
    src.commit()
    print(f"pacs_to_cama.py: {table}: {rows} rows, read {read_s:.3f} s, write {write_s:.3f} s",
          file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True, help="libpq conninfo of the PACS database")
    p.add_argument("--target", required=True, help="libpq conninfo of the CAMA database")
    p.add_argument("--roll-year", type=int, default=2026)
    p.add_argument("--sql-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "..", "..", "tests", "integration", "sql"))
    p.add_argument("--batch", type=int, default=5000, help="rows per transaction")
    a = p.parse_args()
    if a.batch <= 0:
        p.error("--batch must be positive")
    t0 = time.monotonic()
    src = psycopg2.connect(a.source)
    dst = psycopg2.connect(a.target)
    try:
        sync_table(src, dst, a.sql_dir, "pardat", PARDAT_COLS, a.roll_year, a.batch)
        sync_table(src, dst, a.sql_dir, "asmt", ASMT_COLS, a.roll_year, a.batch)
    finally:
        src.close()
        dst.close()
    print(f"total_ms {int((time.monotonic() - t0) * 1000)}")


if __name__ == "__main__":
    main()
