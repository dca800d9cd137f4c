"""Database client and server metrics: db_client_operation_duration_seconds
(the traced process is the client) and db_server_operation_duration_seconds
(the traced process is the database server), for PostgreSQL 15, MariaDB and
Redis, with their real servers and real clients (pgbench, psql, psycopg2,
the mariadb client, PyMySQL, DBD::MariaDB, redis-benchmark, redis-cli,
redis-py, raw sockets).

Every test starts its own servers on free 127.0.0.1 ports in temp dirs and
compares, per server_port, the whole set of series
{(db_operation_name, db_collection_name, error_type): count} with what it
expects, exactly; where the server keeps its own statistics (Redis INFO
commandstats, MariaDB Com_* counters, the PostgreSQL statement log) they are
the independent truth. The tests' own bookkeeping goes over the servers'
unix sockets, never over the TCP port that is looked at.
"""
import os
import re

import lib
from lib import DB_CLIENT, DB_SERVER, fail, bucket, start_agent, wait_db_table, db_labels


def _eq(what, got, want):
    if got != want:
        fail("%s: expected %r, got %r" % (what, want, got))


def _add(*tables):
    out = {}
    for t in tables:
        for k, v in t.items():
            out[k] = out.get(k, 0) + v
    return {k: v for k, v in out.items() if v}


def _only_label(agent, base, port, name, want):
    """Every `base` series of the port has label name == want."""
    got = sorted({l.get(name, "") for l in db_labels(agent.scrape(), base, port)})
    _eq("%s values of %s series of port %s" % (name, base, port), got, [want])


def _latency_bucket(agent, base, port, **labels):
    """A ~0.3 s operation: counted in le=0.5, not in le=0.25."""
    s = agent.scrape()
    b025 = bucket(s, 0.25, base, server_port=str(port), **labels)
    b05 = bucket(s, 0.5, base, server_port=str(port), **labels)
    if (b025, b05) != (0, 1):
        fail("%s%s: a 0.3 s operation should be in le=0.5 (got %g) and not in le=0.25 (got %g)"
             % (base, lib._lfmt(dict(labels, server_port=str(port))), b05, b025))


# ---------------------------------------------------------------------------
# Redis

REDIS_PIPELINE_CLIENT = r"""
import socket, sys
port = int(sys.argv[1])

def cmd(*a):
    out = [b"*%d\r\n" % len(a)]
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)

class R:
    def __init__(self, s):
        self.s, self.buf = s, b""
    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise SystemExit("closed")
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l
    def bulk(self, n):
        while len(self.buf) < n + 2:
            d = self.s.recv(65536)
            if not d:
                raise SystemExit("closed")
            self.buf += d
        v, self.buf = self.buf[:n], self.buf[n + 2:]
        return v
    def reply(self):
        l = self.line()
        if l[:1] == b"$":
            n = int(l[1:])
            return None if n < 0 else self.bulk(n)
        if l[:1] == b"*":
            return [self.reply() for _ in range(int(l[1:]))]
        return l

s = socket.create_connection(("127.0.0.1", port))
r = R(s)
# 100 INCR in one write: one pipeline of identical commands
s.sendall(b"".join(cmd("INCR", "ctr") for _ in range(100)))
got = [r.reply() for _ in range(100)]
assert got[-1] == b":100", got[-3:]
# a transaction, one command at a time: MULTI, 3 queued, EXEC
s.sendall(cmd("SET", "tx", "abc")); assert r.reply() == b"+OK"
s.sendall(cmd("MULTI")); assert r.reply() == b"+OK"
for c in (cmd("APPEND", "tx", "d"), cmd("LPUSH", "tx", "x"), cmd("STRLEN", "tx")):
    s.sendall(c)
    q = r.reply()
    assert q == b"+QUEUED", q
s.sendall(cmd("EXEC")); ex = r.reply()
assert ex[0] == b":4" and ex[1].startswith(b"-WRONGTYPE") and ex[2] == b":4", ex
# the same transaction pipelined in one write
s.sendall(cmd("MULTI") + cmd("INCR", "ctr") + cmd("INCR", "ctr") + cmd("EXEC"))
got = [r.reply() for _ in range(4)]
assert got[3] == [b":101", b":102"], got
# a pipeline mixing errors and successes in one write
s.sendall(cmd("GET", "tx") + cmd("HGET", "tx", "f") + cmd("NOSUCHCMD", "a") + cmd("GET", "tx"))
got = [r.reply() for _ in range(4)]
assert got[0] == b"abcd" and got[1].startswith(b"-WRONGTYPE") and got[2].startswith(b"-ERR") and got[3] == b"abcd", got
# a 1 MB value each way
big = bytes(range(256)) * 4096
s.sendall(cmd("SET", "big", big)); assert r.reply() == b"+OK"
s.sendall(cmd("GET", "big")); assert r.reply() == big
s.close()
print("ok")
"""

REDIS_PY_CLIENT = r"""
import sys
import redis
port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port)
p = r.pipeline(transaction=False)
for i in range(30):
    p.set("py:%d" % i, i)
for i in range(30):
    p.get("py:%d" % i)
res = p.execute()
assert res[:30] == [True] * 30 and res[30:] == [str(i).encode() for i in range(30)], res
p = r.pipeline(transaction=True)
p.incr("py:n")
p.incr("py:n")
p.delete("py:0")
assert p.execute() == [1, 2, 1]
assert r.exists("py:0") == 0
r.close()
print("ok")
"""


def _redis_ops(stats):
    """commandstats {name: calls} -> {(OP, "", ""): calls} for top-level
    commands (subcommands such as config|get count as CONFIG)."""
    out = {}
    for name, calls in stats.items():
        op = name.split("|")[0].upper()
        out[(op, "", "")] = out.get((op, "", ""), 0) + calls
    return out


def _client_stats(rd):
    """INFO commandstats without the test's own INFO / CONFIG RESETSTAT
    (sent over the unix socket)."""
    return {k: v for k, v in rd.commandstats().items() if k not in ("info", "config|resetstat")}


def test_db_redis_benchmark_get_set_equal_commandstats():
    """redis-benchmark -n 2000 -c 2 -P 16 -t get,set, redis-benchmark and
    redis-server traced: on both sides every command counts once: GET, SET
    and redis-benchmark's CONFIG GETs equal the server's INFO commandstats
    (reset once the agent is ready), nothing else, no errors."""
    bench = lib.need_exe(lib.REDIS_BENCHMARK, "redis-tools")
    rd = lib.Redis()
    agent = start_agent(["--exe", lib.REDIS_SERVER, "--exe", bench])
    _eq("CONFIG RESETSTAT", rd.admin("CONFIG", "RESETSTAT"), "OK")
    lib.run_client([bench, "-h", "127.0.0.1", "-p", str(rd.port), "-n", "2000", "-c", "2", "-P", "16",
                    "-t", "get,set", "-q"], "redis-benchmark", timeout=60)
    stats = _client_stats(rd)
    want = _redis_ops(stats)
    for op in ("GET", "SET"):
        if want.get((op, "", ""), 0) < 2000:
            fail("redis commandstats show fewer than 2000 %s calls: %s" % (op, stats))
    lib.log("commandstats: %s" % stats)
    wait_db_table(agent, DB_CLIENT, rd.port, want, what="redis-benchmark, vs INFO commandstats")
    wait_db_table(agent, DB_SERVER, rd.port, want, what="redis-server, vs INFO commandstats")
    _only_label(agent, DB_CLIENT, rd.port, "service_name", "redis-benchmark")
    # /usr/bin/redis-server is a symlink to redis-check-rdb: the agent names
    # such a multi-call binary by the command name, redis-server.
    _only_label(agent, DB_SERVER, rd.port, "service_name", "redis-server")
    for base in (DB_CLIENT, DB_SERVER):
        _only_label(agent, base, rd.port, "db_system_name", "redis")
        _only_label(agent, base, rd.port, "server_address", "127.0.0.1")
    agent.stop()


def test_db_redis_cli_errors_and_debug_sleep():
    """redis-cli, one connection per command, and redis-server named `redis`
    by a config file: SET, GET, LPUSH on a string (WRONGTYPE), an unknown
    command (ERR), INCR, DEBUG SLEEP 0.3 (in le=0.5, not le=0.25), DEL;
    the same table on both sides, equal to INFO commandstats for the
    commands it knows."""
    cli = lib.need_exe(lib.REDIS_CLI, "redis-tools")
    rd = lib.Redis()
    conf = lib.write_file(os.path.join(lib.mkdtemp("conf"), "aion.conf"),
                          "[target]\nexe = %s\nservice_name = redis\n\n[target]\nexe = %s\n"
                          % (lib.REDIS_SERVER, cli))
    agent = start_agent(["--config", conf])
    _eq("CONFIG RESETSTAT", rd.admin("CONFIG", "RESETSTAT"), "OK")
    cmds = [
        (["SET", "k", "v"], "OK"),
        (["GET", "k"], "v"),
        (["LPUSH", "k", "x"], "WRONGTYPE"),
        (["NOSUCHCOMMAND", "k"], "ERR unknown command"),
        (["INCR", "n"], "1"),
        (["INCR", "n"], "2"),
        (["DEBUG", "SLEEP", "0.3"], "OK"),
        (["DEL", "k", "n"], "2"),
    ]
    for argv, expect in cmds:
        _, out, err = lib.run_client([cli, "-h", "127.0.0.1", "-p", str(rd.port)] + argv, "redis-cli",
                                     timeout=20)
        if expect not in out + err:
            fail("redis-cli %s: expected %r in the output, got %r %r" % (argv, expect, out, err))
    want = {("SET", "", ""): 1, ("GET", "", ""): 1, ("LPUSH", "", "WRONGTYPE"): 1,
            ("NOSUCHCOMMAND", "", "ERR"): 1, ("INCR", "", ""): 2, ("DEBUG", "", ""): 1, ("DEL", "", ""): 1}
    _eq("INFO commandstats (top-level commands)", _redis_ops(_client_stats(rd)),
        _redis_ops({"set": 1, "get": 1, "lpush": 1, "incr": 2, "debug": 1, "del": 1}))
    wait_db_table(agent, DB_CLIENT, rd.port, want, what="redis-cli")
    wait_db_table(agent, DB_SERVER, rd.port, want, what="redis-server")
    _only_label(agent, DB_CLIENT, rd.port, "service_name", "redis-cli")
    _only_label(agent, DB_SERVER, rd.port, "service_name", "redis")
    for base in (DB_CLIENT, DB_SERVER):
        _latency_bucket(agent, base, rd.port, db_operation_name="DEBUG")
    agent.stop()


def test_db_redis_pipelines_multi_exec_and_redis_py():
    """Client side of a raw-socket client (--pid): 100 INCR in one write
    are 100 INCR; MULTI / queued APPEND, LPUSH, STRLEN / EXEC one by one
    (EXEC with a WRONGTYPE inside its array is not an error); MULTI, INCR,
    INCR, EXEC in one write; GET, HGET (WRONGTYPE), an unknown command
    (ERR), GET in one write; SET and GET of a 1 MB value. Then, under a
    new agent, redis-py (python3-redis) pipelines: 30 SET + 30 GET, then a
    transaction (MULTI, 2 incr() = INCRBY, DEL, EXEC), and EXISTS. The
    server side (--exe redis-server) equals the client side each time, and
    INFO commandstats (which leaves out the unknown command)."""
    lib.need_module("redis", "python3-redis")
    rd = lib.Redis()
    raw = lib.python_client(REDIS_PIPELINE_CLIENT, [str(rd.port)], "raw redis client")
    rpy = lib.python_client(REDIS_PY_CLIENT, [str(rd.port)], "redis-py client")
    agent = start_agent(["--pid", str(raw.pid), "--exe", lib.REDIS_SERVER])
    _eq("CONFIG RESETSTAT", rd.admin("CONFIG", "RESETSTAT"), "OK")
    raw.go(timeout=30)
    want_raw = {("INCR", "", ""): 102, ("SET", "", ""): 2, ("MULTI", "", ""): 2, ("APPEND", "", ""): 1,
                ("LPUSH", "", ""): 1, ("STRLEN", "", ""): 1, ("EXEC", "", ""): 2, ("GET", "", ""): 3,
                ("HGET", "", "WRONGTYPE"): 1, ("NOSUCHCMD", "", "ERR"): 1}
    # what the server executed: everything but the unknown command (a
    # command failing with WRONGTYPE is a call too)
    _eq("INFO commandstats after the raw client", _redis_ops(_client_stats(rd)),
        _redis_ops({"incr": 102, "set": 2, "multi": 2, "append": 1, "lpush": 1, "strlen": 1, "exec": 2,
                    "get": 3, "hget": 1}))
    wait_db_table(agent, DB_CLIENT, rd.port, want_raw, what="raw socket client")
    wait_db_table(agent, DB_SERVER, rd.port, want_raw, what="redis-server")
    _only_label(agent, DB_CLIENT, rd.port, "service_name", "python3.11")
    agent.stop()

    agent = start_agent(["--pid", str(rpy.pid), "--exe", lib.REDIS_SERVER])
    _eq("CONFIG RESETSTAT", rd.admin("CONFIG", "RESETSTAT"), "OK")
    rpy.go(timeout=30)
    # redis-py sends incr() as INCRBY key 1
    want_py = {("SET", "", ""): 30, ("GET", "", ""): 30, ("MULTI", "", ""): 1, ("INCRBY", "", ""): 2,
               ("DEL", "", ""): 1, ("EXEC", "", ""): 1, ("EXISTS", "", ""): 1}
    _eq("INFO commandstats after redis-py", _redis_ops(_client_stats(rd)), want_py)
    wait_db_table(agent, DB_CLIENT, rd.port, want_py, what="redis-py")
    wait_db_table(agent, DB_SERVER, rd.port, want_py, what="redis-server")
    agent.stop()


REDIS_BULK_CLIENT = r"""
import socket, sys
import redis
port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port)
p = r.pipeline(transaction=False)
for i in range(1000):
    p.set("bulk:%d" % i, "x")
assert p.execute() == [True] * 1000
for i in range(5):
    assert r.get("bulk:1") == b"x"
r.close()
# one write of 300 SETs (1 to 3000 bytes), then 5 GETs on that connection
s = socket.create_connection(("127.0.0.1", port))
def cmd(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
s.sendall(b"".join(cmd(b"SET", b"v:%d" % i, b"x" * (1 + i * 10)) for i in range(300)))
buf = b""
while buf.count(b"+OK\r\n") < 300:
    buf += s.recv(65536)
for i in range(5):
    s.sendall(cmd(b"GET", b"v:0"))
    assert s.recv(100) == b"$1\r\nx\r\n"
s.close()
print("ok")
"""


def test_db_redis_large_pipelines_then_single_commands():
    """Pipelines longer than a few dozen commands: redis-py sends a
    1,000-SET pipeline (in writes of ~6 kB; the server reads up to 16 kB at
    a time, ~500 commands), then 5 GETs on the same connection; a raw
    socket writes 300 SETs of 1 to 3,000 bytes (~450 kB) at once, then 5
    GETs on that connection. Every command is counted once on both sides
    (INFO commandstats), and the connections keep being counted after the
    pipeline."""
    lib.need_module("redis", "python3-redis")
    rd = lib.Redis()
    cl = lib.python_client(REDIS_BULK_CLIENT, [str(rd.port)], "bulk redis client")
    agent = start_agent(["--pid", str(cl.pid), "--exe", lib.REDIS_SERVER])
    _eq("CONFIG RESETSTAT", rd.admin("CONFIG", "RESETSTAT"), "OK")
    cl.go(timeout=60)
    want = {("SET", "", ""): 1300, ("GET", "", ""): 10}
    _eq("INFO commandstats", _redis_ops(_client_stats(rd)), want)
    wait_db_table(agent, DB_CLIENT, rd.port, want, what="redis-py and raw socket")
    wait_db_table(agent, DB_SERVER, rd.port, want, what="redis-server")
    agent.stop()


# ---------------------------------------------------------------------------
# MariaDB

MY_COM = ("Com_select", "Com_insert", "Com_update", "Com_delete", "Com_set_option", "Com_commit",
          "Com_rollback", "Com_admin_commands", "Com_stmt_prepare", "Com_stmt_execute", "Com_stmt_reset",
          "Com_show_databases", "Com_show_tables", "Com_show_fields")

MY_TABLE = "CREATE TABLE app.items (id INT PRIMARY KEY, name MEDIUMTEXT, qty INT)"


def _mariadb_app(my):
    my.admin("CREATE DATABASE app", MY_TABLE, "CREATE TABLE app.other (x INT)")


def _com(before, after):
    """The Com_* counters that moved between two status() calls."""
    d = lib.status_delta(before, after)
    return {k: v for k, v in d.items() if v}


def _mariadb_cli(my, sql, db="app", ok_rc=(0,)):
    return lib.run_client([lib.MARIADB, "--no-defaults", "-h", "127.0.0.1", "-P", str(my.port), "-u", "root",
                           "-D", db, "-e", sql], "mariadb -e %r" % sql, timeout=30, ok_rc=ok_rc)


def _check_mariadb_cli_binary():
    # /usr/bin/mariadb is the client itself (mysql is the symlink to it)
    real = os.path.realpath(lib.MARIADB)
    if real != lib.MARIADB:
        fail("%s is a link to %s: the test selects the client by that path" % (lib.MARIADB, real))
    with open(lib.MARIADB, "rb") as f:
        if f.read(4) != b"\x7fELF":
            fail("%s is not an ELF executable (a wrapper script?)" % lib.MARIADB)


def test_db_mariadb_cli_statements_errors_and_sleep():
    """The mariadb client in batch mode (-e; it sends only the statements
    given, no `select @@version_comment`): 3 INSERTs on one connection, a
    SELECT, an UPDATE, a DELETE, a syntax error (1064, _OTHER), a missing
    table (1146), SELECT SLEEP(0.3) (in le=0.5, not le=0.25). Client side
    (--exe /usr/bin/mariadb) and server side (--pid mariadbd) equal, and
    equal to the server's Com_* counters."""
    lib.need_exe(lib.MARIADB, "mariadb-client")
    _check_mariadb_cli_binary()
    my = lib.MariaDB()
    _mariadb_app(my)
    agent = start_agent(["--exe", lib.MARIADB, "--pid", str(my.pid)])
    before = my.status(*MY_COM)
    _mariadb_cli(my, "INSERT INTO items VALUES (1, 'a', 1); INSERT INTO items VALUES (2, 'b', 2); "
                     "INSERT INTO items (id, name, qty) VALUES (3, 'c', 3)")
    _, out, _ = _mariadb_cli(my, "SELECT name FROM items WHERE id = 2")
    _eq("SELECT output", out.split(), ["name", "b"])
    _mariadb_cli(my, "UPDATE items SET qty = qty + 1 WHERE id > 1")
    _mariadb_cli(my, "DELETE FROM items WHERE id = 3")
    _, _, err = _mariadb_cli(my, "selec 1", ok_rc=(1,))
    if "ERROR 1064" not in err:
        fail("`selec 1` did not fail with 1064: %r" % err)
    _, _, err = _mariadb_cli(my, "SELECT * FROM nosuch", ok_rc=(1,))
    if "ERROR 1146" not in err:
        fail("`SELECT * FROM nosuch` did not fail with 1146: %r" % err)
    _mariadb_cli(my, "SELECT SLEEP(0.3)")
    com = _com(before, my.status(*MY_COM))
    # the failed SELECT counts in Com_select; the syntax error in none
    _eq("Com_* deltas", com, {"Com_insert": 3, "Com_select": 3, "Com_update": 1, "Com_delete": 1})
    want = {("INSERT", "items", ""): 3, ("SELECT", "items", ""): 1, ("UPDATE", "items", ""): 1,
            ("DELETE", "items", ""): 1, ("_OTHER", "", "1064"): 1, ("SELECT", "nosuch", "1146"): 1,
            ("SELECT", "", ""): 1}
    wait_db_table(agent, DB_CLIENT, my.port, want, what="mariadb client")
    wait_db_table(agent, DB_SERVER, my.port, want, what="mariadbd")
    _only_label(agent, DB_CLIENT, my.port, "service_name", "mariadb")
    _only_label(agent, DB_SERVER, my.port, "service_name", "mariadbd")
    for base in (DB_CLIENT, DB_SERVER):
        _only_label(agent, base, my.port, "db_system_name", "mysql")
        _only_label(agent, base, my.port, "server_address", "127.0.0.1")
        _latency_bucket(agent, base, my.port, db_operation_name="SELECT", db_collection_name="",
                        error_type="")
    agent.stop()


def test_db_mariadb_interactive_client_version_query_and_rehash():
    """The mariadb client on a terminal with a database (as a user runs
    it): at connect it sends `select @@version_comment limit 1`, SHOW
    DATABASES, SHOW TABLES and one COM_FIELD_LIST per table (auto-rehash;
    a command without a statement name: FIELD_LIST, answered by column
    definitions and EOF, without a column count); then the typed SELECT,
    INSERT, UPDATE. Both sides equal, and equal to the Com_* counters."""
    lib.need_exe(lib.MARIADB, "mariadb-client")
    _check_mariadb_cli_binary()
    my = lib.MariaDB()
    _mariadb_app(my)
    agent = start_agent(["--exe", lib.MARIADB, "--pid", str(my.pid)])
    before = my.status(*MY_COM)
    out = lib.pty_session([lib.MARIADB, "--no-defaults", "-h", "127.0.0.1", "-P", str(my.port), "-u", "root",
                           "app"],
                          ["SELECT COUNT(*) FROM items;", "INSERT INTO items VALUES (9, 'z', 9);",
                           "UPDATE items SET qty = 10 WHERE id = 9;"], b"]> ", "quit")
    if "1 row affected" not in out:
        fail("the INSERT did not succeed: %s" % out[-1500:])
    com = _com(before, my.status(*MY_COM))
    _eq("Com_* deltas", com, {"Com_select": 2, "Com_show_databases": 1, "Com_show_tables": 1,
                              "Com_show_fields": 2, "Com_insert": 1, "Com_update": 1})
    want = {("SELECT", "", ""): 1, ("SHOW", "", ""): 2, ("FIELD_LIST", "", ""): 2, ("SELECT", "items", ""): 1,
            ("INSERT", "items", ""): 1, ("UPDATE", "items", ""): 1}
    wait_db_table(agent, DB_CLIENT, my.port, want, what="interactive mariadb client")
    wait_db_table(agent, DB_SERVER, my.port, want, what="mariadbd")
    agent.stop()


PYMYSQL_CLIENT = r"""
import sys
import pymysql
port, K = int(sys.argv[1]), int(sys.argv[2])
c = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", database="app")
cur = c.cursor()
for i in range(K):
    cur.execute("INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)", (i, "it'em \"%d\" ; --" % i, i))
c.commit()
for i in range(K):
    cur.execute("SELECT name, qty FROM items WHERE id = %s", (i,))
    assert cur.fetchall() == (("it'em \"%d\" ; --" % i, i),)
for i in range(K):
    cur.execute("UPDATE items SET qty = qty + %s WHERE id = %s", (10, i))
for i in range(K):
    cur.execute("DELETE FROM items WHERE id = %s", (i,))
c.commit()
c.ping(reconnect=False)
try:
    cur.execute("INSERT INTO items (id, name, qty) VALUES (%s, %s)", (1, "x"))
    raise SystemExit("the bad INSERT did not fail")
except pymysql.MySQLError as e:
    assert e.args[0] == 1136, e
c.rollback()
# a 300 kB value each way
cur.execute("INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)", (999, "y" * 300000, 0))
cur.execute("SELECT name FROM items WHERE id = %s", (999,))
assert cur.fetchall() == (("y" * 300000,),)
c.commit()
c.close()
print("ok")
"""


def test_db_mariadb_pymysql_parameterised_and_ping():
    """PyMySQL (python3-pymysql; parameters escaped by the client: every
    statement is a COM_QUERY), client side by --pid: SET AUTOCOMMIT = 0 at
    connect, 25 INSERT, COMMIT, 25 SELECT, 25 UPDATE, 25 DELETE, COMMIT,
    conn.ping() (COM_PING: PING), an INSERT with too few values (1136),
    ROLLBACK, an INSERT and a SELECT of a 300 kB value, COMMIT. Server
    side equal; Com_* counters agree."""
    lib.need_module("pymysql", "python3-pymysql")
    my = lib.MariaDB()
    _mariadb_app(my)
    k = 25
    cl = lib.python_client(PYMYSQL_CLIENT, [str(my.port), str(k)], "PyMySQL client")
    agent = start_agent(["--pid", str(cl.pid), "--pid", str(my.pid)])
    before = my.status(*MY_COM)
    cl.go(timeout=60)
    com = _com(before, my.status(*MY_COM))
    _eq("Com_* deltas", com, {"Com_set_option": 1, "Com_insert": k + 2, "Com_commit": 3, "Com_select": k + 1,
                              "Com_update": k, "Com_delete": k, "Com_admin_commands": 1, "Com_rollback": 1})
    want = {("SET", "", ""): 1, ("INSERT", "items", ""): k + 1, ("COMMIT", "", ""): 3,
            ("SELECT", "items", ""): k + 1,
            ("UPDATE", "items", ""): k, ("DELETE", "items", ""): k, ("PING", "", ""): 1,
            ("INSERT", "items", "1136"): 1, ("ROLLBACK", "", ""): 1}
    wait_db_table(agent, DB_CLIENT, my.port, want, what="PyMySQL")
    wait_db_table(agent, DB_SERVER, my.port, want, what="mariadbd")
    _only_label(agent, DB_CLIENT, my.port, "service_name", "python3.11")
    agent.stop()


DBD_CLIENT = r"""
use strict; use warnings; use DBI;
my $x = <STDIN>;
my ($port, $k) = @ARGV;
my $dbh = DBI->connect("DBI:MariaDB:database=app;host=127.0.0.1;port=$port;mariadb_server_prepare=1",
                       "root", "", {RaiseError => 1, PrintError => 0, AutoCommit => 1});
my $ins = $dbh->prepare("INSERT INTO items (id, name, qty) VALUES (?, ?, ?)");
$ins->execute($_, "p$_", $_) for (1 .. $k);
eval { $ins->execute(1, "dup", 0); 1 } and die "duplicate key did not fail";
die "not 1062: " . $dbh->err unless $dbh->err == 1062;
my $sel = $dbh->prepare("SELECT name, qty FROM items WHERE id = ?");
for my $i (1 .. $k) {
    $sel->execute($i);
    my $r = $sel->fetchall_arrayref();
    die "row $i" unless @$r == 1 && $r->[0][0] eq "p$i";
}
my $all = $dbh->prepare("SELECT id, name FROM items WHERE id >= ? ORDER BY id");
$all->execute(1);
my $rows = $all->fetchall_arrayref();
die "all rows" unless @$rows == $k;
my $upd = $dbh->prepare("UPDATE items SET qty = qty + ? WHERE id = ?");
$upd->execute(1, $_) for (1 .. $k);
my $del = $dbh->prepare("DELETE FROM items WHERE id = ?");
$del->execute($_) for (1 .. $k);
eval { $dbh->prepare("SELEC name FROM items WHERE id = ?"); 1 } and die "bad prepare did not fail";
die "not 1064: " . $dbh->err unless $dbh->err == 1064;
$dbh->disconnect;
print "ok\n";
"""


def test_db_mariadb_server_prepared_statements():
    """Server-side prepared statements (binary protocol) from libmariadb via
    DBD::MariaDB (libdbd-mariadb-perl, mariadb_server_prepare=1), client
    side by --pid: the 4 SETs of its connect, each COM_STMT_PREPARE once as
    PREPARE (with the statement's table), each COM_STMT_EXECUTE as the
    statement's verb and table: 5 INSERT + a duplicate key (1062, after
    which libmariadb sends COM_STMT_RESET: STMT_RESET), 5 one-row SELECTs, a
    5-row SELECT, 5 UPDATE, 5 DELETE; a PREPARE that fails (1064). Server side equal; Com_stmt_* counters agree."""
    lib.need_exe(lib.PERL, "perl")
    r = lib.run_client([lib.PERL, "-MDBD::MariaDB", "-e", "1"], "perl -MDBD::MariaDB", ok_rc=None)
    if r[0] != 0:
        fail("perl cannot load DBD::MariaDB (package libdbd-mariadb-perl, `make deps`): %s" % r[2].strip()[-300:])
    my = lib.MariaDB()
    _mariadb_app(my)
    k = 5
    cl = lib.GatedClient([lib.PERL, "-e", DBD_CLIENT, str(my.port), str(k)], "DBD::MariaDB client")
    agent = start_agent(["--pid", str(cl.pid), "--pid", str(my.pid)])
    before = my.status(*MY_COM)
    cl.go(timeout=60)
    com = _com(before, my.status(*MY_COM))
    # executes also count in Com_insert etc.; libmariadb resets a statement
    # (COM_STMT_RESET) after its execute failed
    _eq("Com_* deltas", com, {"Com_set_option": 4, "Com_stmt_prepare": 6, "Com_stmt_execute": 4 * k + 2,
                              "Com_stmt_reset": 1, "Com_insert": k + 1, "Com_select": k + 1, "Com_update": k,
                              "Com_delete": k})
    want = {("SET", "", ""): 4, ("PREPARE", "items", ""): 5, ("PREPARE", "", "1064"): 1,
            ("INSERT", "items", ""): k, ("INSERT", "items", "1062"): 1, ("STMT_RESET", "", ""): 1,
            ("SELECT", "items", ""): k + 1, ("UPDATE", "items", ""): k, ("DELETE", "items", ""): k}
    wait_db_table(agent, DB_CLIENT, my.port, want, what="DBD::MariaDB (libmariadb)")
    wait_db_table(agent, DB_SERVER, my.port, want, what="mariadbd")
    _only_label(agent, DB_CLIENT, my.port, "service_name", "perl")
    agent.stop()


# ---------------------------------------------------------------------------
# PostgreSQL

# What pgbench itself sends before a run (unless -n): the partitioning query
# (its FROM is past the first 56 bytes: no table), the scale, two VACUUMs
# (no table for VACUUM) and TRUNCATE pgbench_history.
PGBENCH_SETUP = {("SELECT", "", ""): 1, ("SELECT", "pgbench_branches", ""): 1, ("VACUUM", "", ""): 2,
                 ("TRUNCATE", "pgbench_history", ""): 1}


def _pgbench(pg, args, txns):
    _, out, err = lib.run_client([lib.PGBENCH] + args, "pgbench %s" % " ".join(args), env=lib.pg_env(pg),
                                 timeout=90)
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    if not m or int(m.group(1)) != txns or int(m.group(2)) != txns:
        fail("pgbench %s: expected %d transactions processed: %s %s" % (" ".join(args), txns, out[-800:],
                                                                       err[-800:]))
    if re.search(r"number of failed transactions: [1-9]", out):
        fail("pgbench %s reports failed transactions: %s" % (" ".join(args), out[-800:]))


def test_db_pg_pgbench_simple_extended_prepared_and_tpcb():
    """pgbench (--exe, the real binary) and the server (--port): -S -t 250
    -c 4 with -M simple, -M extended (Parse/Bind/Execute/Sync: each Execute
    one operation) and -M prepared (named statement parsed once per
    connection: its executes are SELECT pgbench_accounts, not EXECUTE):
    exactly 1000 SELECT pgbench_accounts each, on both sides; then the
    TPC-B-like default script, -t 250 -c 4: 1000 each of BEGIN, UPDATE
    pgbench_accounts, SELECT pgbench_accounts, UPDATE pgbench_tellers,
    UPDATE pgbench_branches, INSERT pgbench_history, END. Each run also
    has pgbench's own setup statements; each run's total equals the
    statements the server logged (log_statement=all)."""
    lib.need_exe(lib.PGBENCH, "postgresql-15")
    pg = lib.Postgres()
    lib.run_client([lib.PGBENCH, "-i", "-s", "1", "-q"], "pgbench -i", env=lib.pg_env(pg), timeout=60)
    plog = lib.PgStatementLog(pg)
    agent = start_agent(["--exe", lib.PGBENCH, "--port", str(pg.port)])
    n, c = 250, 4
    total = {}
    runs = [(["-S", "-M", mode], {("SELECT", "pgbench_accounts", ""): n * c}) for mode in
            ("simple", "extended", "prepared")]
    runs.append(([], {(op, table, ""): n * c for op, table in (
        ("BEGIN", ""), ("UPDATE", "pgbench_accounts"), ("SELECT", "pgbench_accounts"),
        ("UPDATE", "pgbench_tellers"), ("UPDATE", "pgbench_branches"), ("INSERT", "pgbench_history"),
        ("END", ""))}))
    for args, ops in runs:
        plog.mark()
        _pgbench(pg, args + ["-t", str(n), "-c", str(c)], n * c)
        run = _add(PGBENCH_SETUP, ops)
        logged = plog.count()
        _eq("statements the server logged for pgbench %s" % " ".join(args), logged, sum(run.values()))
        total = _add(total, run)
        what = "after pgbench %s" % " ".join(args or ["(TPC-B)"])
        wait_db_table(agent, DB_CLIENT, pg.port, total, what="pgbench, " + what)
        wait_db_table(agent, DB_SERVER, pg.port, total, what="postgres, " + what)
    _only_label(agent, DB_CLIENT, pg.port, "service_name", "pgbench")
    _only_label(agent, DB_SERVER, pg.port, "service_name", "postgres")
    for base in (DB_CLIENT, DB_SERVER):
        _only_label(agent, base, pg.port, "db_system_name", "postgresql")
        _only_label(agent, base, pg.port, "server_address", "127.0.0.1")
    agent.stop()


def _pipeline_script(pg, depth):
    """A pgbench script: one pipeline of depth-1 SELECTs and an UPDATE."""
    path = os.path.join(pg.tmp, "pipeline-%d.sql" % depth)
    lines = ["\\set aid random(1, 100000)", "\\startpipeline"]
    lines += ["SELECT abalance FROM pgbench_accounts WHERE aid = :aid;"] * (depth - 1)
    lines += ["UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 1;", "\\endpipeline"]
    lib.write_file(path, "\n".join(lines) + "\n")
    return path


def _pgbench_pipelines(depth):
    lib.need_exe(lib.PGBENCH, "postgresql-15")
    pg = lib.Postgres()
    lib.run_client([lib.PGBENCH, "-i", "-s", "1", "-q"], "pgbench -i", env=lib.pg_env(pg), timeout=60)
    script = _pipeline_script(pg, depth)
    plog = lib.PgStatementLog(pg)
    agent = start_agent(["--exe", lib.PGBENCH, "--port", str(pg.port)])
    n, c = 50, 2
    total = {}
    for mode in ("extended", "prepared"):
        plog.mark()
        # -n: no vacuum; a custom script: no setup queries either
        _pgbench(pg, ["-n", "-M", mode, "-f", script, "-t", str(n), "-c", str(c)], n * c)
        run = {("SELECT", "pgbench_accounts", ""): (depth - 1) * n * c, ("UPDATE", "pgbench_tellers", ""): n * c}
        _eq("statements the server logged for -M %s" % mode, plog.count(), sum(run.values()))
        total = _add(total, run)
        wait_db_table(agent, DB_CLIENT, pg.port, total, what="pgbench, pipelines of %d, -M %s" % (depth, mode))
        wait_db_table(agent, DB_SERVER, pg.port, total, what="postgres, pipelines of %d, -M %s" % (depth, mode))
    agent.stop()


def test_db_pg_pgbench_pipelines_of_6():
    """pgbench pipelines (\\startpipeline: Parse/Bind/Execute of 5 SELECTs
    and an UPDATE, then one Sync; the ReadyForQuery completes them all),
    -M extended and -M prepared, -t 50 -c 2: each Execute counted once on
    both sides with its statement's verb and table; the server's log
    agrees."""
    _pgbench_pipelines(6)


def test_db_pg_pgbench_pipelines_of_31():
    """As pipelines_of_6 with 30 SELECTs and an UPDATE per pipeline: more
    operations in flight on one connection than the agent's per-connection
    queue (AION_QUEUE_DEPTH, 8) holds; a batch of this size is ordinary
    for JDBC / pgx / libpq pipeline clients."""
    _pgbench_pipelines(31)


def _psql(pg, sql, sslmode="disable", ok_rc=(0,)):
    return lib.run_client([lib.PSQL, "-X", "-A", "-t", "-c", sql], "psql -c %r" % sql,
                          env=lib.pg_env(pg, {"PGSSLMODE": sslmode}), timeout=30, ok_rc=ok_rc)


def test_db_pg_psql_errors_latency_and_sslrequest():
    """psql (--exe, the real binary; one connection per statement) and the
    server (--port): `select 1/0` is one SELECT with error_type 22;
    `selec 1` one _OTHER with 42; `select pg_sleep(0.3)` is in le=0.5 and
    not in le=0.25; with PGSSLMODE=prefer against ssl=off (SSLRequest
    answered 'N') 3 SELECTs count exactly like with disable; a Query with
    two statements (`insert ...; select ...`) is one operation, named by
    the first. Both sides equal; the server's log agrees on the total."""
    lib.need_exe(lib.PSQL, "postgresql-15")
    pg = lib.Postgres()
    pg_ssl = lib.pg_admin(pg, "SHOW ssl")
    _eq("the server's ssl setting", pg_ssl, "off")
    lib.pg_admin(pg, "CREATE TABLE items (id int primary key, name text)")
    plog = lib.PgStatementLog(pg)
    agent = start_agent(["--exe", lib.PSQL, "--port", str(pg.port)])
    _, _, err = _psql(pg, "select 1/0", ok_rc=(1,))
    if "division by zero" not in err:
        fail("select 1/0: %r" % err)
    _, _, err = _psql(pg, "selec 1", ok_rc=(1,))
    if "syntax error" not in err:
        fail("selec 1: %r" % err)
    _psql(pg, "select pg_sleep(0.3)")
    for i in range(3):
        _, out, _ = _psql(pg, "SELECT name FROM items WHERE id = %d" % i, sslmode="prefer")
        _psql(pg, "SELECT name FROM items WHERE id = %d" % i, sslmode="disable")
    _, out, _ = _psql(pg, "INSERT INTO items VALUES (1, 'one'); SELECT count(*) FROM items")
    _eq("last line of the two-statement query's output", out.strip().split("\n")[-1], "1")
    want = {("SELECT", "", "22"): 1, ("_OTHER", "", "42"): 1, ("SELECT", "", ""): 1,
            ("SELECT", "items", ""): 6, ("INSERT", "items", ""): 1}
    # a syntax error is not logged by log_statement (it is not parsed)
    _eq("statements the server logged", plog.count(), sum(want.values()) - 1)
    wait_db_table(agent, DB_CLIENT, pg.port, want, what="psql")
    wait_db_table(agent, DB_SERVER, pg.port, want, what="postgres")
    _only_label(agent, DB_CLIENT, pg.port, "service_name", "psql")
    for base in (DB_CLIENT, DB_SERVER):
        _latency_bucket(agent, base, pg.port, db_operation_name="SELECT", db_collection_name="",
                        error_type="")
    agent.stop()


PSYCOPG2_CLIENT = r"""
import sys
import psycopg2
port, K = int(sys.argv[1]), int(sys.argv[2])
c = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", sslmode="prefer")
cur = c.cursor()
for i in range(K):
    cur.execute("INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)", (i, "it'em %d" % i, i))
c.commit()
for i in range(K):
    cur.execute("SELECT name, qty FROM items WHERE id = %s", (i,))
    assert cur.fetchall() == [("it'em %d" % i, i)]
c.commit()
for i in range(K):
    cur.execute("UPDATE items SET qty = qty + %s WHERE id = %s", (10, i))
for i in range(K):
    cur.execute("DELETE FROM items WHERE id = %s", (i,))
c.commit()
try:
    cur.execute("SELECT * FROM missing_table WHERE id = %s", (1,))
    raise SystemExit("the SELECT from a missing table did not fail")
except psycopg2.errors.UndefinedTable:
    pass
c.rollback()
c.autocommit = True
cur.executemany("INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)", [(100 + i, "m", i) for i in range(3)])
cur.execute("SELECT count(*) FROM items")
assert cur.fetchone()[0] == 3
# a 300 kB value each way
cur.execute("INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)", (999, "y" * 300000, 0))
cur.execute("SELECT name FROM items WHERE id = %s", (999,))
assert cur.fetchone()[0] == "y" * 300000
c.close()
print("ok")
"""


def test_db_pg_psycopg2_parameterised_statements():
    """psycopg2 (python3-psycopg2; parameters interpolated by the client,
    simple Query protocol, BEGIN sent before the first statement of each
    transaction), client side by --pid: 20 INSERT, COMMIT; 20 SELECT,
    COMMIT; 20 UPDATE + 20 DELETE, COMMIT; a SELECT from a missing table
    (42), ROLLBACK; in autocommit 3 INSERT (executemany), a SELECT
    count(*), an INSERT and a SELECT of a 300 kB value. Server side (--port) equal; the server's log agrees."""
    lib.need_module("psycopg2", "python3-psycopg2")
    pg = lib.Postgres()
    lib.pg_admin(pg, "CREATE TABLE items (id int primary key, name text, qty int)")
    plog = lib.PgStatementLog(pg)
    k = 20
    cl = lib.python_client(PSYCOPG2_CLIENT, [str(pg.port), str(k)], "psycopg2 client")
    agent = start_agent(["--pid", str(cl.pid), "--port", str(pg.port)])
    plog.mark()
    cl.go(timeout=60)
    want = {("BEGIN", "", ""): 4, ("INSERT", "items", ""): k + 4, ("COMMIT", "", ""): 3,
            ("SELECT", "items", ""): k + 2, ("UPDATE", "items", ""): k, ("DELETE", "items", ""): k,
            ("SELECT", "missing_table", "42"): 1, ("ROLLBACK", "", ""): 1}
    _eq("statements the server logged", plog.count(), sum(want.values()))
    wait_db_table(agent, DB_CLIENT, pg.port, want, what="psycopg2")
    wait_db_table(agent, DB_SERVER, pg.port, want, what="postgres")
    _only_label(agent, DB_CLIENT, pg.port, "service_name", "python3.11")
    agent.stop()


# ---------------------------------------------------------------------------
# garbage on database ports

GARBAGE_CLIENT = r"""
import socket, ssl, sys, random
import psycopg2, pymysql
rport, pport, mport = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def hello(tls12_short):
    if tls12_short:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    else:
        ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(i, o, server_hostname=None if tls12_short else "db.example")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return o.read()

rnd = random.Random(20240611)
garbage = b"\xff\x00\xfe\x01" + bytes(rnd.randrange(256) for _ in range(600)) + b"\r\n"
payloads = [hello(False), hello(True), garbage]
assert len(payloads[0]) > 256 and len(payloads[1]) < 256, [len(p) for p in payloads]

def poke(port, data, first=None):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(1.0)
    try:
        if first:
            s.sendall(first)
            s.recv(65536)
        s.sendall(data)
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()

for port in (rport, pport, mport):
    for p in payloads:
        poke(port, p)
# a valid Redis command, then garbage on the same connection
poke(rport, garbage, first=b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n")

s = socket.create_connection(("127.0.0.1", rport))
s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
assert s.recv(100) == b"+OK\r\n"
s.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
assert s.recv(100) == b"$1\r\nv\r\n"
s.close()
c = psycopg2.connect(host="127.0.0.1", port=pport, user="postgres", dbname="postgres", sslmode="disable")
c.autocommit = True
cur = c.cursor()
cur.execute("SELECT 1"); cur.execute("SELECT 2")
c.close()
c = pymysql.connect(host="127.0.0.1", port=mport, user="root", password="", autocommit=True)
cur = c.cursor()
cur.execute("SELECT 1"); cur.execute("SELECT 2")
c.close()
print("ok")
"""


def test_db_garbage_and_tls_hello_on_database_ports():
    """A traced client (--pid) sends to Redis, PostgreSQL and MariaDB
    (servers traced too) a 517-byte TLS ClientHello, a 136-byte TLS 1.2
    ClientHello (record length < 256: its 4th byte is 0, like a MySQL
    packet's sequence number 0), and fixed random bytes, each on a new
    connection, and to Redis a valid SET followed by garbage on the same
    connection: none of it makes a db series except that SET; the agent
    stays healthy; then normal clients on new connections (raw RESP SET +
    GET, psycopg2 2 SELECTs, PyMySQL 2 SELECTs) are counted exactly on
    both sides."""
    lib.need_module("psycopg2", "python3-psycopg2")
    lib.need_module("pymysql", "python3-pymysql")
    rd = lib.Redis()
    pg = lib.Postgres()
    my = lib.MariaDB()
    cl = lib.python_client(GARBAGE_CLIENT, [str(rd.port), str(pg.port), str(my.port)], "garbage client")
    agent = start_agent(["--pid", str(cl.pid), "--exe", lib.REDIS_SERVER, "--port", str(pg.port),
                         "--pid", str(my.pid)])
    cl.go(timeout=60)
    st, _, body = agent.get("/healthz")
    _eq("/healthz after the garbage", (st, body.strip()), (200, b"ok"))
    for port, want in ((rd.port, {("SET", "", ""): 2, ("GET", "", ""): 1}),
                       (pg.port, {("SELECT", "", ""): 2}),
                       (my.port, {("SELECT", "", ""): 2})):
        wait_db_table(agent, DB_CLIENT, port, want, what="client side")
        wait_db_table(agent, DB_SERVER, port, want, what="server side")
    agent.stop()
