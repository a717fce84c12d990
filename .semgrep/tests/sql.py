# Test target for ../rules/sql.yaml (semgrep --test annotations). Never executed.
import sqlite3


def query(conn: sqlite3.Connection, name, version):
    cur = conn.cursor()
    # ruleid: secure-iot.sql-string-formatting
    cur.execute(f"SELECT * FROM packages WHERE name = '{name}'")
    # ruleid: secure-iot.sql-string-formatting
    cur.execute("SELECT * FROM packages WHERE name = '%s'" % name)
    # ruleid: secure-iot.sql-string-formatting
    conn.execute("DELETE FROM vulns WHERE id = {}".format(name))
    # ruleid: secure-iot.sql-string-formatting
    cur.execute("SELECT * FROM packages WHERE version = '" + version + "'")
    # ruleid: secure-iot.sql-string-formatting
    cur.executemany("INSERT INTO t VALUES (%s)" % name, [])
    sql = f"SELECT * FROM advisories WHERE pkg = '{name}'"
    # ruleid: secure-iot.sql-string-formatting
    cur.execute(sql)
    # ok: secure-iot.sql-string-formatting
    cur.execute("SELECT * FROM packages WHERE name = ?", (name,))
    # ok: secure-iot.sql-string-formatting
    cur.execute("SELECT * FROM packages WHERE name = %(name)s", {"name": name})
    # ok: secure-iot.sql-string-formatting
    conn.execute("SELECT 1")
    static = "SELECT count(*) FROM packages"
    # ok: secure-iot.sql-string-formatting
    cur.execute(static)
