/* SPDX-License-Identifier: MIT */
/* Maps and small helpers shared by every attach family of aion.bpf.c. */
#ifndef AION_MAPS_BPF_H
#define AION_MAPS_BPF_H

/* Settings from the agent (rodata, set before load). */
const volatile bool trace_all = false;
const volatile __u32 wakeup_bytes = 256 * 1024;
/* Set by the agent while --exe selectors name paths: execs of other files
 * are reported so that it can match them through /proc/PID/root. */
volatile __u32 report_execs;
/* Incarnation numbers handed out by the kernel side (struct aion_target). */
__u32 gen_next;

struct conn_key {
	__u32 tgid;
	__u32 fd;
};

enum conn_kind {
	CK_TCP = 1,   /* TCP over IPv4/IPv6: traced */
	CK_OTHER = 2, /* another socket: not traced (yet) */
};

struct aion_req {
	__u64 start_ns;  /* first byte of the request read */
	__u64 body;      /* HTTP: request body bytes; DB: statement */
	__u8  method;    /* HTTP: enum aion_http_method; DB: enum aion_db_op */
	__u8  path_len;
	__u16 status;    /* HTTP: response status once its start line was written;
			  * DB: error noted on a PG simple query */
	__u32 count;     /* DB: identical pipelined operations this entry stands for;
			  * HTTP client: AION_HTTP_HOST when path holds the Host
			  * value (else the server's address), AION_HTTP_CONNECT
			  * for a failed connect */
	char  path[AION_PATH_MAX];
};

struct conn {
	__u64 sk;
	__u32 head;        /* oldest request in flight (free-running) */
	__u32 tail;        /* next free slot (free-running) */
	__u32 svc;         /* service id of the owning process */
	__u16 lport;
	__u16 rport;
	__u8  kind;        /* enum conn_kind */
	__u8  role;        /* enum aion_role */
	__u8  carry_len[2];
	__u32 gen;         /* incarnation of the owning process */
	__u64 carry_ns[2];
	__u64 connect_ns;  /* client: connect() began; 0 once it is known to have
			    * succeeded or its failure was reported */
	struct aion_http_frame fr[2]; /* 0: bytes read, 1: bytes written (HTTP or DB framing) */
	__u8  carry[2][AION_CARRY];
	__u8  proto;       /* enum aion_proto, learnt from the first bytes */
	__u8  tries;       /* syscalls whose bytes told nothing yet */
	__u8  parse_len;   /* PG: text of the last Parse */
	__u8  pooled;      /* counted in db_pool */
	__u8  qlost;       /* an operation was dropped (queue full) since the last queued */
	__u8  tls;         /* CONN_TLS_*: ciphertext at the syscalls, plaintext from a library */
	__u8  pad3[2];
	__u32 wseq;        /* server: the socket's write_seq when the last request started */
	__u32 parse_hash;  /* PG: name hash of the last Parse */
	__u8  laddr[16];   /* local and peer address, IPv4 as ::ffff:a.b.c.d */
	__u8  raddr[16];
	char  parse_text[AION_PATH_MAX];
	struct aion_req q[AION_QUEUE_DEPTH];
};

#define CONN_TLS_CIPHER 1 /* the syscalls carry TLS records: not parsed there */
#define CONN_TLS_PLAIN  2 /* the parse state belongs to the TLS library's plaintext */

/* How a syscall's bytes are found from its arguments. */
enum io_kind {
	IO_PLAIN = 1, /* read/write/recvfrom/sendto: (fd, buf, count) */
	IO_IOV,       /* readv/writev: (fd, iov, iovcnt) */
	IO_MSG,       /* recvmsg/sendmsg: (fd, msghdr) */
	IO_SENDFILE,  /* sendfile: (out_fd, ...): no bytes to look at */
};

struct sys_args {
	__u64 ptr;
	__u64 cnt;
	__u32 fd;
	__u8  kind;   /* enum io_kind */
	__u8  write;
	__u16 pad;
};

struct seg {
	__u64 ptr;
	__u64 len;
};

/* PostgreSQL named statements: (connection, name hash) -> text, so that an
 * Execute of one prepared long before is named in the kernel (and identical
 * ones pipelined share a queue slot). The map is pg_stmts. */
struct stmt_key {
	__u64 sk;
	__u32 hash;
	__u32 pad;
};

struct stmt_text {
	__u8 len;
	char text[AION_PATH_MAX];
};

/* Per-CPU work area of the data path. It lives in a map, not on the stack,
 * so that the verifier does not track its values precisely across
 * bpf_loop() iterations (which would keep it from converging). */
struct work {
	struct aion_http_scan s;
	struct seg segs[AION_MAX_IOV];
	__u64 base;   /* syscall offset of the window start, carry included */
	__u32 nsegs;
	__u32 carry;
	struct aion_req tmp; /* a statement's text on its way to the agent */
	struct stmt_text stmt; /* ... and on its way to pg_stmts */
	struct conn_key key; /* the connection handed to a database program */
	__u8  io_kind;       /* enum io_kind of the syscall handed to aion_data */
	__u8  io_write;
	__u8  in_tls;        /* that syscall is a TLS library's, inside one of its calls */
	struct sys_args targs; /* TLS plaintext handed to aion_tls_data: fd, buffer */
	long  tret;            /* ... and its length */
};

/* One bit per tgid: the hot-path filter (an array lookup is inlined by the
 * verifier into an address computation). The agent sizes it from pid_max
 * and maps it to set bits without a syscall each. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u64);
} target_bits SEC(".maps");

/* Traced tgid -> service; read when a connection is created. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct aion_target);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct aion_exe_key);
	__type(value, __u32);
} exes SEC(".maps");

/* --port selectors: TCP port (host order) -> service id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u32);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_key);
	__type(value, struct conn);
} conns SEC(".maps");

/* Database connections of traced clients, per server: open and in use. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct aion_pool_key);
	__type(value, struct aion_pool_val);
} db_pool SEC(".maps");

/* PostgreSQL named statements (struct stmt_key/stmt_text above). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct stmt_key);
	__type(value, struct stmt_text);
} pg_stmts SEC(".maps");

/* One zeroed connection, never written: what a new entry starts from. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn);
} zero_conn SEC(".maps");

/* fds known not to be TCP sockets: one lookup and out on the next I/O. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, __u8);
} nonsock SEC(".maps");

/* connect() in progress, per thread: when it began. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} connecting SEC(".maps");

/* struct sock * -> connection, for socket state changes seen out of context. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct conn_key);
} socks SEC(".maps");


/* In-flight server requests per port: an array so that the update on every
 * request is an inlined address computation and an atomic add; the agent
 * reads it through mmap at scrape time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct aion_active_slot);
} active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct work);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AION_CNT__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} events SEC(".maps");

/* Completed requests are staged per CPU and written to `events` AION_BATCH
 * at a time: a ring-buffer reserve takes a lock with interrupts off, which
 * costs ~190 ns per call on the reference VM. A stage is flushed when full,
 * when its oldest record is AION_BATCH_NS old, or by aion_flush, which the
 * agent runs on every CPU each time it polls. */
struct stage {
	__u32 n;
	__u32 busy;     /* a program on this CPU is between append and flush */
	__u64 first_ns; /* when the oldest staged record completed */
	struct aion_http_event ev[AION_BATCH]; /* or struct aion_db_event: same size */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stage);
} stage SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} proc_events SEC(".maps");

/* TLS library calls in progress, per thread (struct tls_call). */
enum tls_op {
	TLS_READ = 1,
	TLS_WRITE = 2,
	TLS_HANDSHAKE = 3,
};
#define TLS_WIDE 0x80 /* the call returns ssize_t (GnuTLS), not int */

struct tls_call {
	__u64 ssl;   /* SSL * or gnutls_session_t */
	__u64 buf;   /* the plaintext */
	__u64 lenp;  /* SSL_read_ex/SSL_write_ex: where the byte count goes; 0: returned */
	__s32 fd;    /* the socket its syscalls used; -1: none yet */
	__u8  op;    /* enum tls_op | TLS_WIDE */
	__u8  pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

/* One bit per thread id: a TLS call is in progress (the entry of tls_calls
 * is looked up only then, so syscalls of processes that use no TLS pay an
 * inlined array access). Sized like target_bits by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u64);
} tls_tids SEC(".maps");

static __always_inline void tls_tid(__u32 tid, int on)
{
	__u32 idx = tid >> 6;
	__u64 *w = bpf_map_lookup_elem(&tls_tids, &idx), bit = 1ULL << (tid & 63);

	if (!w)
		return;
	if (on)
		__sync_fetch_and_or(w, bit);
	else
		__sync_fetch_and_and(w, ~bit);
}

static __always_inline int in_tls_call(__u32 tid)
{
	__u32 idx = tid >> 6;
	__u64 *w = bpf_map_lookup_elem(&tls_tids, &idx);

	return w && ((*w >> (tid & 63)) & 1);
}

/* (tgid, SSL *) -> socket fd, learnt from the syscalls inside its calls:
 * for reads served from the library's buffer, with no syscall. */
struct tls_sock_key {
	__u64 ssl;
	__u32 tgid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tls_sock_key);
	__type(value, __s32);
} tls_socks SEC(".maps");

/* Files mapped executable by a traced process, reported to the agent once
 * (it looks for TLS libraries among them). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct aion_file_key);
	__type(value, __u8);
} exec_files SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1;
}

static __always_inline void count_n(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += n;
}

#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#define READ_ONCE(x)     (*(volatile typeof(x) *)&(x))

static __always_inline struct aion_target *target_of(__u32 tgid)
{
	return bpf_map_lookup_elem(&targets, &tgid);
}

static __always_inline __u64 *target_word(__u32 tgid)
{
	__u32 idx = tgid >> 6;

	return bpf_map_lookup_elem(&target_bits, &idx);
}

static __always_inline void target_bit(__u32 tgid, int on)
{
	__u64 *w = target_word(tgid), bit = 1ULL << (tgid & 63);

	if (!w)
		return;
	if (on)
		__sync_fetch_and_or(w, bit);
	else
		__sync_fetch_and_and(w, ~bit);
}

#endif /* AION_MAPS_BPF_H */
