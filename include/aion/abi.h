/* SPDX-License-Identifier: MIT */
/* What crosses the kernel/agent boundary: constants, enums and records.
 * Included by the BPF programs (after vmlinux.h) and by the agent (after
 * <linux/types.h>). Plain __u* types only. */
#ifndef AION_ABI_H
#define AION_ABI_H

#define AION_PATH_MAX      64   /* first bytes of the request target kept */
#define AION_QUEUE_DEPTH   8    /* pipelined requests in flight per connection */
#define AION_WINDOW        1024 /* bytes of one syscall buffer that are parsed */
#define AION_MAX_IOV       64   /* iovecs of readv/writev/sendmsg that HTTP reads (power of 2) */
#define AION_DB_IOV        4    /* ... and that the database parsers read */
#define AION_BATCH         8    /* request records per ring-buffer record, at most */
#define AION_BATCH_NS      20000000ULL /* a staged record waits at most this long for company */

enum aion_http_method {
	AION_METHOD_UNKNOWN = 0,
	AION_METHOD_GET,
	AION_METHOD_HEAD,
	AION_METHOD_POST,
	AION_METHOD_PUT,
	AION_METHOD_DELETE,
	AION_METHOD_CONNECT,
	AION_METHOD_OPTIONS,
	AION_METHOD_TRACE,
	AION_METHOD_PATCH,
	AION_METHOD__COUNT,
};

enum aion_role {
	AION_ROLE_UNKNOWN = 0,
	AION_ROLE_SERVER  = 1, /* accepted, or first saw a request being read */
	AION_ROLE_CLIENT  = 2, /* connected, or first saw a request being written */
};

/* What a connection speaks, learnt from its first bytes. */
enum aion_proto {
	AION_PROTO_UNKNOWN = 0,
	AION_PROTO_HTTP    = 1,
	AION_PROTO_PG      = 2,
	AION_PROTO_MYSQL   = 3,
	AION_PROTO_REDIS   = 4,
	AION_PROTO_NONE    = 5, /* none of these: not looked at again */
};

/* Kinds of database operations (struct aion_db_event op). */
enum aion_db_op {
	AION_DB_QUERY    = 1, /* text is SQL (PG Q, MySQL COM_QUERY) */
	AION_DB_EXECUTE  = 2, /* a prepared statement: text is its SQL when known, else see stmt */
	AION_DB_PREPARE  = 3, /* MySQL COM_STMT_PREPARE: text is SQL */
	AION_DB_COMMAND  = 4, /* Redis: text is the command name */
	AION_DB_PING     = 5, /* MySQL COM_PING */
	AION_DB_OTHER    = 6, /* MySQL command byte in stmt */
	AION_DB_SYNC     = 7, /* PG Sync: a queue marker, never reported */
	AION_DB_STMT     = 8, /* not an operation: statement stmt of conn has text (PG Parse, MySQL PREPARE_OK) */
};

enum aion_err {
	AION_ERR_NONE = 0,
	AION_ERR_CONN_CLOSED = 1, /* the peer closed or reset with the request in flight */
	AION_ERR_TIMEOUT     = 2, /* client: it closed the connection itself with the
				   * request in flight or its connect pending, or
				   * the kernel timed the connection out */
	AION_ERR_REFUSED     = 3, /* client: connect() was refused; no request was sent */
};

/* struct aion_http_event flags */
#define AION_HTTP_HOST    1 /* client: path holds the request's Host value */
#define AION_HTTP_CONNECT 2 /* client: no request; its connect() failed */
#define AION_HTTP_TLS     4 /* the bytes came from a TLS library (url_scheme https) */

enum aion_event_kind {
	AION_EV_HTTP = 1,      /* struct aion_http_event */
	AION_EV_PROC_EXEC = 2, /* struct aion_proc_event: exec of a traced process */
	AION_EV_PROC_EXIT = 3, /* struct aion_proc_event: a traced process exited */
	AION_EV_PROC_FORK = 4, /* struct aion_proc_event: a traced process forked */
	AION_EV_PROC_LISTEN = 5, /* struct aion_proc_event: listens on a selected port: traced */
	AION_EV_PROC_EXEC_OTHER = 6, /* struct aion_proc_event: exec of another file (path check) */
	AION_EV_DB = 7,        /* struct aion_db_event */
	AION_EV_PROC_MAP = 8,  /* struct aion_proc_event: a traced process mapped a file
				* executable that no traced process mapped before
				* (cpu_user_ns: its inode, cpu_system_ns: its device,
				* kernel encoding): the agent looks for TLS libraries */
};

/* One completed (or aborted) HTTP request. A record of the `events` ring
 * buffer holds 1 to AION_BATCH of them back to back. */
struct aion_http_event {
	__u8  kind;        /* AION_EV_HTTP */
	__u8  role;        /* enum aion_role */
	__u8  method;      /* enum aion_http_method */
	__u8  error;       /* enum aion_err */
	__u16 status;      /* response status, 0 when none */
	__u16 server_port; /* host order */
	__u32 tgid;
	__u32 service_id;  /* from the target map; 0 = derive from the executable */
	__u64 start_ns;    /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 end_ns;
	__u64 req_body;    /* request body bytes (Content-Length), 0 when none */
	__u64 resp_body;   /* response body bytes (Content-Length), 0 when none */
	__u8  path_len;    /* bytes valid in path */
	__u8  flags;       /* AION_HTTP_* */
	__u8  pad[2];
	__u32 gen;         /* process incarnation (struct aion_target), 0 when untracked */
	/* Server: the request target as received, may hold a query. Client:
	 * the Host header's value (path_len bytes) with AION_HTTP_HOST, else
	 * the server's address in path[0..16) (IPv4 as ::ffff:a.b.c.d). */
	char  path[AION_PATH_MAX];
	__u64 pad2;
};
_Static_assert(sizeof(struct aion_http_event) == 128, "aion_http_event ABI");

#define AION_DB_TEXT 56

/* One database operation (or several identical pipelined ones), or a
 * prepared statement's text. Same size as aion_http_event: records of both
 * kinds share the per-CPU staging and the ring. */
struct aion_db_event {
	__u8  kind;        /* AION_EV_DB */
	__u8  role;        /* enum aion_role: client (the application) or server */
	__u8  system;      /* enum aion_proto: PG, MYSQL, REDIS */
	__u8  op;          /* enum aion_db_op */
	__u16 error;       /* 0: success; PG: SQLSTATE class ('2' << 8 | '2');
			    * MySQL: error number; Redis: 1 (prefix in text + 32) */
	__u16 server_port;
	__u32 tgid;
	__u32 service_id;
	__u64 start_ns;
	__u64 end_ns;
	__u32 gen;
	__u32 count;       /* operations this record stands for */
	__u64 conn;        /* connection identity (struct sock *): scopes stmt */
	__u32 stmt;        /* PG statement-name hash, MySQL statement id */
	__u8  text_len;    /* bytes valid in text */
	__u8  err_len;     /* Redis: bytes of the error prefix at text + 32 */
	__u8  pad[2];
	__u8  addr[16];    /* server address, IPv4 as ::ffff:a.b.c.d */
	char  text[AION_DB_TEXT];
};
_Static_assert(sizeof(struct aion_db_event) == 128, "aion_db_event ABI");

/* A process event for a traced process. */
#define AION_PROC_MATCHED 1 /* EXEC: the file is a selected --exe file */
#define AION_PROC_EXECED  2 /* EXIT: not an exit: an --exe target exec'd another file */

struct aion_proc_event {
	__u8  kind;       /* AION_EV_PROC_* */
	__u8  flags;      /* AION_PROC_* */
	__u16 port;       /* LISTEN: the selected port */
	__u32 tgid;
	__u32 ppid;       /* parent tgid for FORK */
	__u32 service_id;
	__u32 gen;        /* the new incarnation (FORK, EXEC, LISTEN) */
	__u32 pad2;
	__u64 cpu_user_ns;   /* EXIT: CPU time of the process, user mode */
	__u64 cpu_system_ns; /* EXIT: CPU time of the process, kernel mode */
	char  name[32];   /* base name of the process's executable (it may be gone
			   * from /proc by the time the agent reads this) */
};
_Static_assert(sizeof(struct aion_proc_event) == 72, "aion_proc_event ABI");

/* Value of the target map (key: tgid). gen tells incarnations of a tgid
 * apart (pid reuse, exec): the kernel numbers them from 1 upwards, the
 * agent's own insertions have the top bit set. */
struct aion_target {
	__u32 service_id;
	__u32 gen;
};
#define AION_GEN_AGENT 0x80000000u
_Static_assert(sizeof(struct aion_target) == 8, "aion_target ABI");

/* Key of the exec_files map: a file mapped executable by a traced process
 * and reported once (AION_EV_PROC_MAP). */
struct aion_file_key {
	__u64 ino;
	__u32 dev;  /* kernel encoding: major << 20 | minor */
	__u32 pad;
};
_Static_assert(sizeof(struct aion_file_key) == 16, "aion_file_key ABI");

/* Key of the exe map: executables selected by --exe, matched at exec. */
struct aion_exe_key {
	__u64 ino;
	__u32 dev;  /* kernel encoding: major << 20 | minor */
	__u32 pad;
};
_Static_assert(sizeof(struct aion_exe_key) == 16, "aion_exe_key ABI");

/* Slot of the active-requests array, indexed by server port: requests read
 * and not yet answered, and the last process that started one there. */
struct aion_active_slot {
	__s64 n;
	__u32 tgid;
	__u32 pad;
};
_Static_assert(sizeof(struct aion_active_slot) == 16, "aion_active_slot ABI");

/* Connections of a traced client to a database server (db_pool map). */
struct aion_pool_key {
	__u32 tgid;
	__u16 port;     /* server port */
	__u8  system;   /* enum aion_proto */
	__u8  pad;
	__u8  addr[16]; /* server address, IPv4 as ::ffff:a.b.c.d */
};
_Static_assert(sizeof(struct aion_pool_key) == 24, "aion_pool_key ABI");

struct aion_pool_val {
	__s64 open;     /* connections open */
	__s64 used;     /* of which with an operation in flight */
};

/* Indices of the per-CPU counter array; the agent exports each one. */
enum aion_counter {
	AION_CNT_EVENTS_LOST = 0,   /* ring buffer reserve failed */
	AION_CNT_CONN_TABLE_FULL,   /* connection map update failed */
	AION_CNT_QUEUE_FULL,        /* pipelined request dropped: queue full */
	AION_CNT_PARSE_GIVEUP,      /* bytes that could not be framed as HTTP */
	AION_CNT_TARGET_TABLE_FULL, /* a forked target could not be added */
	AION_CNT_ADOPTED,           /* connections adopted from the fd table */
	AION_CNT_PROC_LOST,         /* a process event could not be reserved */
	AION_CNT_PARSE_PG,          /* PostgreSQL bytes that could not be framed */
	AION_CNT_PARSE_MYSQL,       /* MySQL bytes that could not be framed */
	AION_CNT_PARSE_REDIS,       /* Redis bytes that could not be framed */
	AION_CNT_TLS_NO_SOCKET,     /* TLS plaintext whose socket is unknown (memory BIO) */
	AION_CNT__COUNT,
};

#endif /* AION_ABI_H */
