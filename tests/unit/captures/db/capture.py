#!/usr/bin/python3
"""Record real database conversations for tests/unit/test_db.c and the DB
fuzzer.

  /usr/bin/python3 tests/unit/captures/db/capture.py            # all captures
  /usr/bin/python3 tests/unit/captures/db/capture.py pg redis   # some of them
  /usr/bin/python3 tests/unit/captures/db/capture.py seeds DIR [SQLDIR]
        # no server needed: write the captures as fuzz_db inputs into DIR and
        # the SQL texts they carry as fuzz_sql inputs into SQLDIR

Stdlib only, plus the real servers and clients (Debian packages
postgresql-15, mariadb-server/-client, redis-server/-tools, and the perl
DBD::MariaDB module for the binary protocol). Every server runs on a free
127.0.0.1 port out of a temporary directory and is stopped by its pid.

A small TCP proxy sits between the real client and the real server and
records every recv() it made, in the order it made them, as
(direction, bytes): C = client -> server, S = server -> client. A capture is
two files:
  NAME.bin  the chunks back to back, in that order
  NAME.idx  one line per chunk, "C 123" or "S 45" (direction, length);
            '#' lines are comments (what was sent, which client)
The chunks are what a traced process's read()/write() would move give or
take coalescing; the tests also cut them in every other way.
"""
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PG_BIN = "/usr/lib/postgresql/15/bin"
ENV = dict(os.environ, LC_ALL="C", LANG="C")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def run(argv, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    kw.setdefault("env", ENV)
    kw.setdefault("timeout", 120)
    r = subprocess.run(argv, **kw)
    return r


def must(argv, **kw):
    r = run(argv, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (argv[0], r.returncode,
                                                   (r.stdout or b"").decode("utf-8", "replace")[-2000:]))
    return r


def stop(proc, sig=signal.SIGTERM, timeout=30):
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


# ---- the recording proxy ------------------------------------------------------

class Proxy:
    """127.0.0.1:port -> 127.0.0.1:upstream. Each accepted connection is a
    list of (dir, bytes), one entry per recv(), appended (under one lock)
    before the bytes are passed on, so a request is always recorded before
    the response it causes."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.threads = []
        self.lock = threading.Lock()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream), timeout=30)
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(None)
            rec = []
            with self.lock:
                self.conns.append(rec)
            for src, dst, d in ((c, u, "C"), (u, c, "S")):
                t = threading.Thread(target=self._pump, args=(src, dst, d, rec), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst, d, rec):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    rec.append((d, data))
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def take(self, timeout=20.0):
        """All connections, once each has been closed in both directions."""
        end = time.time() + timeout
        for t in list(self.threads):
            t.join(max(0.1, end - time.time()))
        self.sock.close()
        with self.lock:
            out = [list(c) for c in self.conns]
            self.conns = []
            self.threads = []
        return out


def save(name, conn, comment):
    data = b"".join(b for _, b in conn)
    with open(os.path.join(HERE, name + ".bin"), "wb") as f:
        f.write(data)
    with open(os.path.join(HERE, name + ".idx"), "w") as f:
        for line in comment.strip().splitlines():
            f.write("# " + line + "\n")
        for d, b in conn:
            f.write("%s %d\n" % (d, len(b)))
    nc = sum(1 for d, _ in conn if d == "C")
    print("%-28s %7d bytes  %3d client chunks  %3d server chunks" % (name, len(data), nc, len(conn) - nc))


def sent(conn, needle):
    return any(d == "C" and needle in b for d, b in conn)


def pick(conns, needle, what):
    got = [c for c in conns if sent(c, needle)]
    if len(got) != 1:
        raise RuntimeError("%s: %d connections sent %r" % (what, len(got), needle))
    return got[0]


# ---- PostgreSQL ----------------------------------------------------------------

class Postgres:
    def __init__(self, tmp):
        pw = pwd.getpwnam("postgres")
        self.tmp = os.path.join(tmp, "pg")
        os.mkdir(self.tmp)
        os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.tmp, "data")
        self.port = free_port()
        self.as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        self.env = dict(ENV, HOME=self.tmp, PGPASSWORD="aion", PGCONNECT_TIMEOUT="5")
        # Password (SCRAM) authentication over TCP: the captures hold the
        # whole SASL exchange.
        must(self.as_pg + [PG_BIN + "/initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust",
                           "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C"],
             cwd=self.tmp)
        self.log = open(os.path.join(self.tmp, "log"), "wb")
        self.proc = subprocess.Popen(self.as_pg + [PG_BIN + "/postgres", "-D", self.data, "-p", str(self.port),
                                                   "-k", self.tmp, "-c", "listen_addresses=127.0.0.1",
                                                   "-c", "fsync=off", "-c", "autovacuum=off"],
                                     stdout=self.log, stderr=self.log, cwd=self.tmp, env=self.env)
        end = time.time() + 30
        while run([PG_BIN + "/psql", "-h", self.tmp, "-p", str(self.port), "-U", "postgres", "-X",
                   "-c", "select 1"], env=self.env).returncode:
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError("postgres did not start")
            time.sleep(0.2)
        self.local("create role aion login password 'aion'")
        self.local("create database aion owner aion")

    def local(self, sql, db="postgres"):
        must([PG_BIN + "/psql", "-h", self.tmp, "-p", str(self.port), "-U", "postgres", "-X", "-q",
              "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql], env=self.env)

    def stop(self):
        stop(self.proc, signal.SIGINT)


def capture_pg(tmp):
    pg = Postgres(tmp)
    try:
        # pgbench tables (scale 1), created over the unix socket: not recorded.
        must([PG_BIN + "/pgbench", "-i", "-q", "-h", pg.tmp, "-p", str(pg.port), "-U", "aion", "aion"],
             env=pg.env)
        psql = [PG_BIN + "/psql", "-h", "127.0.0.1", "-U", "aion", "-d", "aion", "-X", "-q"]

        # psql: SSLRequest answered 'N', StartupMessage, SCRAM, then one
        # Query message per statement.
        px = Proxy(pg.port)
        script = (b"select g, 'row ' || g as name from generate_series(1, 5) g;\n"
                  b"select 1/0;\n"
                  b"create temp table t (id int primary key, v text);\n"
                  b"insert into t values (1, 'a'), (2, 'b');\n"
                  b"update t set v = 'c' where id = 2;\n"
                  b"select 1 \\; select 2;\n")
        run(psql + ["-p", str(px.port)], input=script, env=pg.env)
        save("pg_psql", pick(px.take(), b"generate_series", "psql"),
             "psql 15 -h 127.0.0.1 (sslmode=prefer: SSLRequest, 'N'), SCRAM password auth, then\n" +
             script.decode())

        # A result larger than 64 KB: one DataRow of 100000 bytes.
        px = Proxy(pg.port)
        run(psql + ["-p", str(px.port), "-c", "select repeat('x', 100000)"], env=pg.env)
        save("pg_big", pick(px.take(), b"repeat", "psql big"),
             "psql -c \"select repeat('x', 100000)\": one DataRow of 100 KB")

        # pgbench select-only, extended and prepared protocol.
        for mode in ("extended", "prepared"):
            px = Proxy(pg.port)
            must([PG_BIN + "/pgbench", "-h", "127.0.0.1", "-p", str(px.port), "-U", "aion", "-n", "-S",
                  "-M", mode, "-t", "5", "-c", "1", "aion"], env=pg.env)
            save("pg_pgbench_" + mode, pick(px.take(), b"SELECT abalance", "pgbench " + mode),
                 "pgbench -n -S -M %s -t 5 -c 1: 5 x SELECT abalance FROM pgbench_accounts WHERE aid = $1" % mode)

        # A pipeline: three statements, the second fails, one Sync. pgbench
        # aborts the client after the error: that is the capture.
        with open(os.path.join(pg.tmp, "pipe.sql"), "w") as f:
            f.write("\\startpipeline\nselect 1;\nselect 1/0;\nselect 2;\n\\endpipeline\n")
        px = Proxy(pg.port)
        run([PG_BIN + "/pgbench", "-h", "127.0.0.1", "-p", str(px.port), "-U", "aion", "-n", "-M", "extended",
             "-t", "1", "-c", "1", "-f", os.path.join(pg.tmp, "pipe.sql"), "aion"], env=pg.env)
        save("pg_pipeline_error", pick(px.take(), b"1/0", "pgbench pipeline"),
             "pgbench -M extended -f pipe.sql, pipe.sql:\n\\startpipeline\nselect 1;\nselect 1/0;\n"
             "select 2;\n\\endpipeline\n(Parse/Bind/Describe/Execute x 3, one Sync; the server skips the "
             "third after the error)")

        # psycopg2: a transaction (BEGIN is sent by the driver), a named
        # server-side cursor (DECLARE/FETCH), an error inside a transaction.
        px = Proxy(pg.port)
        code = r'''
import psycopg2, sys
c = psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), user="aion", password="aion", dbname="aion",
                     sslmode="disable")
cur = c.cursor()
cur.execute("SELECT aid, abalance FROM pgbench_accounts WHERE aid <= %s ORDER BY aid", (3,))
cur.fetchall()
cur.execute("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = %s", (1,))
c.commit()
try:
    cur.execute("INSERT INTO pgbench_branches (bid) VALUES (1)")
except psycopg2.Error:
    pass
c.rollback()
c.close()
'''
        run(["/usr/bin/python3", "-c", code, str(px.port)], env=pg.env)
        save("pg_psycopg2", pick(px.take(), b"pgbench_accounts", "psycopg2"),
             "psycopg2 (sslmode=disable): BEGIN; SELECT ...; UPDATE ...; COMMIT; BEGIN; INSERT (duplicate key "
             "23505); ROLLBACK" + "\n" + code)
    finally:
        pg.stop()


# ---- MariaDB --------------------------------------------------------------------

class MariaDB:
    def __init__(self, tmp):
        pw = pwd.getpwnam("mysql")
        self.tmp = os.path.join(tmp, "my")
        self.data = os.path.join(self.tmp, "data")
        os.makedirs(self.data)
        for d in (self.tmp, self.data):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.sock = os.path.join(self.tmp, "sock")
        self.port = free_port()
        must(["mariadb-install-db", "--no-defaults", "--datadir=" + self.data, "--user=mysql",
              "--auth-root-authentication-method=normal", "--skip-test-db"], cwd=self.tmp,
             stdin=subprocess.DEVNULL)
        self.log = open(os.path.join(self.tmp, "log"), "wb")
        self.proc = subprocess.Popen(["mariadbd", "--no-defaults", "--datadir=" + self.data,
                                      "--port=%d" % self.port, "--bind-address=127.0.0.1",
                                      "--socket=" + self.sock, "--pid-file=" + os.path.join(self.tmp, "pid"),
                                      "--user=mysql", "--skip-name-resolve", "--innodb-buffer-pool-size=16M",
                                      "--innodb-log-file-size=8M", "--innodb-flush-log-at-trx-commit=0"],
                                     stdout=self.log, stderr=self.log, cwd=self.tmp, env=ENV)
        end = time.time() + 60
        while run(["mariadb", "--no-defaults", "-S", self.sock, "-u", "root", "-e", "select 1"]).returncode:
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError("mariadbd did not start")
            time.sleep(0.2)
        self.local("create user aion@'127.0.0.1' identified by 'aion'; create database aion; "
                   "grant all on aion.* to aion@'127.0.0.1'; "
                   "create table aion.t (id int primary key, name varchar(32))")

    def local(self, sql):
        must(["mariadb", "--no-defaults", "-S", self.sock, "-u", "root", "-e", sql])

    def stop(self):
        stop(self.proc)


def capture_mysql(tmp):
    my = MariaDB(tmp)
    try:
        cli = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-u", "aion", "-paion", "aion", "--force"]
        # The mariadb client: one COM_QUERY per statement; with --force it
        # goes on after the syntax error (1064). The DELIMITER switch sends
        # two statements in one COM_QUERY (SERVER_MORE_RESULTS_EXISTS).
        script = (b"SELECT id, name FROM t;\n"
                  b"INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');\n"
                  b"SELECT id, name FROM t ORDER BY id;\n"
                  b"SELEC 1;\n"
                  b"UPDATE t SET name = 'uno' WHERE id = 1;\n"
                  b"SELECT seq, REPEAT('y', 60) AS pad FROM seq_1_to_300;\n"
                  b"SELECT REPEAT('z', 100000) AS big;\n"
                  b"DELIMITER //\n"
                  b"SELECT 1 AS a; SELECT 2 AS b, 3 AS c //\n"
                  b"DELIMITER ;\n"
                  b"DELETE FROM t WHERE id = 3;\n")
        px = Proxy(my.port)
        run(cli + ["-P", str(px.port)], input=script)
        save("my_cli", pick(px.take(), b"seq_1_to_300", "mariadb client"),
             "mariadb 10.11 client, --force, stdin:\n" + script.decode())

        # Server-side prepared statements (binary protocol): perl
        # DBD::MariaDB with mariadb_server_prepare: COM_STMT_PREPARE,
        # COM_STMT_EXECUTE, COM_STMT_CLOSE.
        perl = r'''
use DBI;
my $d = DBI->connect("DBI:MariaDB:database=aion;host=127.0.0.1;port=$ARGV[0];mariadb_server_prepare=1",
                     "aion", "aion", { RaiseError => 0, PrintError => 0, AutoCommit => 1 }) or die $DBI::errstr;
my $s = $d->prepare("SELECT id, name FROM t WHERE id >= ?");
$s->execute(1); $s->fetchall_arrayref();
$s->execute(2); $s->fetchall_arrayref();
my $i = $d->prepare("INSERT INTO t (id, name) VALUES (?, ?)");
$i->execute(10, "ten");
$i->execute(10, "again");
$d->disconnect();
'''
        px = Proxy(my.port)
        must(["perl", "-e", perl, str(px.port)])
        save("my_prepared", pick(px.take(), b"WHERE id >= ?", "DBD::MariaDB"),
             "perl DBD::MariaDB, mariadb_server_prepare=1 (binary protocol):\n" + perl)
    finally:
        my.stop()


# ---- Redis ------------------------------------------------------------------------

class Redis:
    def __init__(self, tmp):
        self.tmp = os.path.join(tmp, "redis")
        os.mkdir(self.tmp)
        self.port = free_port()
        self.log = open(os.path.join(self.tmp, "log"), "wb")
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.tmp],
                                     stdout=self.log, stderr=self.log, cwd=self.tmp, env=ENV)
        end = time.time() + 20
        while run(["redis-cli", "-p", str(self.port), "ping"]).stdout.strip() != b"PONG":
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)

    def stop(self):
        stop(self.proc)


def capture_redis(tmp):
    rs = Redis(tmp)
    try:
        # redis-cli reading commands from a pipe: one connection, each
        # command sent after the previous reply.
        script = (b"SET user:1 alice\n"
                  b"GET user:1\n"
                  b"GET missing\n"
                  b"RPUSH list a b c\n"
                  b"LRANGE list 0 -1\n"
                  b"MULTI\n"
                  b"INCR counter\n"
                  b"LRANGE list 0 1\n"
                  b"EXEC\n"
                  b"INCR user:1\n"
                  b"NOSUCHCOMMAND x\n"
                  b"LPUSH user:1 x\n"
                  b"DEL list\n")
        px = Proxy(rs.port)
        run(["redis-cli", "-p", str(px.port)], input=script)
        save("re_cli", pick(px.take(), b"LRANGE", "redis-cli"), "redis-cli 7, stdin:\n" + script.decode())

        # RESP3: HELLO 3 (a map), then map/set replies.
        script3 = (b"HSET h f1 v1 f2 v2\n"
                   b"HGETALL h\n"
                   b"CONFIG GET maxmemory*\n"
                   b"SADD s x\n"
                   b"SMEMBERS s\n"
                   b"HGET h f1\n")
        px = Proxy(rs.port)
        run(["redis-cli", "-3", "-p", str(px.port)], input=script3)
        save("re_resp3", pick(px.take(), b"HGETALL", "redis-cli -3"),
             "redis-cli -3 (HELLO 3 first), stdin:\n" + script3.decode())

        # redis-benchmark: 16 commands per write.
        px = Proxy(rs.port)
        must(["redis-benchmark", "-p", str(px.port), "-c", "1", "-n", "48", "-P", "16", "-t", "set,get,lrange_100",
              "-q"])
        conns = px.take()
        save("re_bench_get", pick(conns, b"GET\r\n$16\r\nkey:__rand_int__", "redis-benchmark get"),
             "redis-benchmark -c 1 -n 48 -P 16 -t get: 3 writes of 16 GETs")
        save("re_bench_lrange", pick(conns, b"LRANGE\r\n$6\r\nmylist", "redis-benchmark lrange"),
             "redis-benchmark -c 1 -n 48 -P 16 -t lrange_100: 3 writes of 16 LRANGE mylist 0 99")

        # redis-py: 100 commands in one pipeline, sent in one write: 100
        # GETs (one command name), then 50 SET/GET pairs; then a value of
        # 100 KB both ways.
        code = r"""
import redis, sys
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[2]))
if sys.argv[1] == "get":
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.get("k%d" % i)
    p.execute()
elif sys.argv[1] == "mixed":
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.get("k%d" % i) if i % 2 else p.set("k%d" % i, "v%d" % i)
    p.execute()
else:
    r.set("big", "x" * 100000)
    r.get("big")
    r.strlen("big")
"""
        for kind, needle, name, what in (
                ("get", b"$3\r\nk99", "re_pipeline_get100", "redis-py pipeline(transaction=False): GET k0 ... GET k99 "
                 "(100 commands, one write)"),
                ("mixed", b"$3\r\nk99", "re_pipeline_mixed", "redis-py pipeline(transaction=False): SET k0 v0, GET k1, "
                 "SET k2 v2, ... GET k99 (100 commands, one write)"),
                ("big", b"STRLEN", "re_big", "redis-py: SET big <100000 x>, GET big, STRLEN big")):
            px = Proxy(rs.port)
            must(["/usr/bin/python3", "-c", code, kind, str(px.port)])
            save(name, pick(px.take(), needle, "redis-py " + kind), what + "\n" + code)
        # RESP3 pub/sub from a raw socket (no installed client speaks RESP3
        # pub/sub and keeps going): the confirmations of SUBSCRIBE and
        # UNSUBSCRIBE are push messages, so is a published message; PING
        # and GET in between get ordinary replies.
        px = Proxy(rs.port)
        c = socket.create_connection(("127.0.0.1", px.port), timeout=10)

        def cmd(*args, expect=1):
            c.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
            time.sleep(0.2)  # one reply (or push) per read, as a client waiting would see them

        cmd(b"HELLO", b"3")
        cmd(b"SUBSCRIBE", b"ch1")
        cmd(b"PING")
        must(["redis-cli", "-p", str(rs.port), "PUBLISH", "ch1", "hello"])
        time.sleep(0.2)
        cmd(b"UNSUBSCRIBE", b"ch1")
        cmd(b"GET", b"k")
        c.close()
        save("re_resp3_pubsub", pick(px.take(), b"SUBSCRIBE", "resp3 pubsub"),
             "raw socket client, RESP3: HELLO 3, SUBSCRIBE ch1 (confirmed by a push), PING, a message "
             "published on ch1 (a push), UNSUBSCRIBE ch1 (a push), GET k")
    finally:
        rs.stop()


# ---- fuzz seeds ---------------------------------------------------------------------

PROTOS = {"pg": 0, "my": 1, "re": 2}


def load(name):
    with open(os.path.join(HERE, name + ".bin"), "rb") as f:
        data = f.read()
    chunks, off = [], 0
    with open(os.path.join(HERE, name + ".idx")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            d, n = line.split()
            chunks.append((d, data[off:off + int(n)]))
            off += int(n)
    assert off == len(data), name
    return chunks


def seeds(outdir, sqldir=None):
    """Inputs of tests/fuzz/fuzz_db.c (see there): byte 0 = protocol (0 PG,
    1 MySQL, 2 Redis) | 0x04 the server's view | 0x08 learnt from the
    first bytes; byte 1 = how chunks are cut (0: as recorded); then chunks:
    1 byte direction (0 client -> server, 1 back), 2 bytes length (big
    endian), the bytes. And of tests/fuzz/fuzz_sql.c: byte 0 (where to cut
    for a second look), then a statement's text (PG Query and Parse, MySQL
    COM_QUERY and COM_STMT_PREPARE as the clients sent them)."""
    os.makedirs(outdir, exist_ok=True)
    if sqldir:
        os.makedirs(sqldir, exist_ok=True)
    n = nsql = 0
    for f in sorted(os.listdir(HERE)):
        if not f.endswith(".idx"):
            continue
        name = f[:-4]
        chunks = load(name)
        proto = PROTOS[name[:2]]
        body = b""
        for d, b in chunks:
            for i in range(0, len(b), 65535):
                part = b[i:i + 65535]
                body += bytes([0 if d == "C" else 1]) + struct.pack(">H", len(part)) + part
        for flags, cut in ((0, 0), (4, 0), (8, 0), (0, 7), (4, 7)):
            with open(os.path.join(outdir, "db-%s-%d-%d" % (name, flags, cut)), "wb") as o:
                o.write(bytes([proto | flags, cut]) + body)
            n += 1
        if not sqldir:
            continue
        for d, b in chunks:
            if d != "C":
                continue
            texts = []
            if name.startswith("pg"):
                i = 0
                while i + 5 <= len(b):
                    t, ln = b[i], struct.unpack(">I", b[i + 1:i + 5])[0]
                    if ln < 4 or ln > 1 << 20:
                        break
                    if t == ord("Q"):
                        texts.append(b[i + 5:i + 1 + ln].rstrip(b"\0"))
                    elif t == ord("P"):
                        parts = b[i + 5:i + 1 + ln].split(b"\0")
                        if len(parts) > 1:
                            texts.append(parts[1])
                    i += 1 + ln
            elif name.startswith("my") and len(b) > 5 and b[3] == 0 and b[4] in (3, 0x16):
                texts.append(b[5:])
            for t in texts:
                with open(os.path.join(sqldir, "sql-%s-%d" % (name, nsql)), "wb") as o:
                    o.write(bytes([0x40]) + t)
                nsql += 1
    print("%d fuzz_db seeds in %s%s" % (n, outdir, ", %d fuzz_sql seeds in %s" % (nsql, sqldir) if sqldir else ""))


def main(argv):
    if argv and argv[0] == "seeds":
        seeds(argv[1], argv[2] if len(argv) > 2 else None)
        return 0
    which = argv or ["pg", "mysql", "redis"]
    tmp = tempfile.mkdtemp(prefix="aion-dbcap-")
    os.chmod(tmp, 0o755)
    try:
        if "pg" in which:
            capture_pg(tmp)
        if "mysql" in which:
            capture_mysql(tmp)
        if "redis" in which:
            capture_redis(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
