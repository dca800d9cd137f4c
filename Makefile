# aion — build, test, run. See README.md.
BUILD      ?= build
CLANG      ?= clang
BPFTOOL    ?= bpftool
CC         ?= gcc
ARCH       := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
LISTEN     ?= 0.0.0.0:9090
MAKEFLAGS  += --no-print-directory

CFLAGS     ?= -O2 -g
CFLAGS     += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Werror=unused-function \
              -D_GNU_SOURCE -Iinclude -Iagent -I$(BUILD) -MMD -MP
LDLIBS     := -lbpf -lelf -lz -lmicrohttpd -lcrypt -lpthread -lm
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
              -Iinclude -I$(BUILD) -MMD -MP

# Agent modules that do not need the BPF skeleton: unit-tested on the host.
LIB_SRCS   := agent/strbuf.c agent/route.c agent/aggregate.c agent/expo.c agent/procinfo.c agent/tlsplace.c \
              agent/config.c agent/identity.c agent/sql.c agent/selfmetrics.c agent/webconfig.c
LIB_SRCS   += agent/privs.c
# Modules that drive the kernel side.
BPF_SRCS   := agent/main.c agent/loader.c agent/targets.c agent/events.c agent/procs.c agent/tls.c
LIB_OBJS   := $(LIB_SRCS:agent/%.c=$(BUILD)/agent/%.o)
AGENT_OBJS := $(BPF_SRCS:agent/%.c=$(BUILD)/agent/%.o)
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps bench-deps run test unit unit-asan integration fuzz fuzz-seeds bench clean deploy-check deploy-gen soak
all: $(BUILD)/aion-agent

# Debian 12 packages for building, testing and the real servers the tests use.
DEPS := clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool libcmocka-dev libmicrohttpd-dev \
        make gcc pkg-config curl wrk nginx-light python3 prometheus iproute2 procps libclang-rt-14-dev \
        postgresql-15 postgresql-client-15 util-linux redis-server redis-tools mariadb-server \
        mariadb-client python3-psycopg2 python3-redis python3-pymysql libdbd-mariadb-perl \
        nodejs apache2-utils openssl libssl-dev python3-pycurl python3-yaml systemd libcrypt-dev
deps:
	@if ! dpkg -s $(DEPS) >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEPS) >/dev/null; \
	fi

# The benchmark also needs Go (a net/http server is one of its workloads).
BENCH_DEPS := golang-go
bench-deps: deps
	@if ! dpkg -s $(BENCH_DEPS) >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BENCH_DEPS) >/dev/null; \
	fi

$(BUILD) $(BUILD)/agent $(BUILD)/tests:
	mkdir -p $@

# vmlinux.h is generated from the running kernel's BTF (CO-RE relocates the
# fields at load time, so the program still runs on other BTF kernels).
$(BUILD)/vmlinux.h: | $(BUILD)
	@test -r /sys/kernel/btf/vmlinux || { echo "build: /sys/kernel/btf/vmlinux is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF=y is required)"; exit 1; }
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/aion.tmp.bpf.o: bpf/aion.bpf.c $(BUILD)/vmlinux.h | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/aion.bpf.o: $(BUILD)/aion.tmp.bpf.o
	$(BPFTOOL) gen object $@ $<

$(BUILD)/aion.skel.h: $(BUILD)/aion.bpf.o
	$(BPFTOOL) gen skeleton $< name aion_bpf > $@

$(BUILD)/agent/%.o: agent/%.c | $(BUILD)/agent
	$(CC) $(CFLAGS) -c $< -o $@

$(AGENT_OBJS): $(BUILD)/aion.skel.h

# The commit the agent was built from, for aion_agent_build_info: rewritten
# only when it changes, so that main.o is rebuilt exactly then.
AION_REVISION ?= $(shell git describe --always --dirty 2>/dev/null)
$(BUILD)/revision.h: FORCE | $(BUILD)
	@r='#define AION_REVISION "$(AION_REVISION)"'; \
	  [ "$$(cat $@ 2>/dev/null)" = "$$r" ] || echo "$$r" > $@
$(BUILD)/agent/main.o: $(BUILD)/revision.h
.PHONY: FORCE
FORCE:

$(BUILD)/aion-agent: $(AGENT_OBJS) $(LIB_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/unit $< $(LIB_OBJS) -o $@ $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# The same unit tests built with AddressSanitizer (leaks included) and
# UndefinedBehaviorSanitizer; the first report fails the run.
ASAN_FLAGS     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_LIB_OBJS  := $(LIB_SRCS:agent/%.c=$(BUILD)/asan/agent/%.o)
ASAN_UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/asan/tests/%)
$(BUILD)/asan/agent/%.o: agent/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -c $< -o $@
$(BUILD)/asan/tests/%: tests/unit/%.c $(ASAN_LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -Itests/unit $< $(ASAN_LIB_OBJS) -o $@ $(LDLIBS) -lcmocka
unit-asan: $(ASAN_UNIT_BINS)
	@set -e; for t in $(ASAN_UNIT_BINS); do echo "== $$t (ASan+UBSan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

# libFuzzer (ASan + UBSan) on every parser of outside bytes: the HTTP and
# database framing parsers and the SQL tokenizer, seeded with the real
# captures, and the agent's own parsers (route, config, cgroup/log names,
# /proc, listen/Accept-Encoding, ELF files), seeded from this machine and
# README.md. `make test` runs each one for its own FUZZ_SECONDS_* (10 + 5 +
# 5 s, then 2 s each); FUZZ_SECONDS, when given, is the time of each:
# `make fuzz FUZZ_SECONDS=600` for a real session. A crash, a sanitizer
# report, a leak or a timeout fails it and leaves the input in $(BUILD)/fuzz/.
FUZZ_SECONDS_HTTP ?= $(if $(FUZZ_SECONDS),$(FUZZ_SECONDS),10)
FUZZ_SECONDS_DB   ?= $(if $(FUZZ_SECONDS),$(FUZZ_SECONDS),5)
FUZZ_SECONDS_SQL  ?= $(if $(FUZZ_SECONDS),$(FUZZ_SECONDS),5)
FUZZ_SECONDS_WEBCONFIG ?= $(if $(FUZZ_SECONDS),$(FUZZ_SECONDS),3)
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzz/fuzz_http: tests/fuzz/fuzz_http.c tests/unit/http_sim.h include/aion/http.h include/aion/abi.h
	mkdir -p $(BUILD)/fuzz/corpus
	$(CLANG) $(FUZZ_CFLAGS) -Iinclude -Itests/unit $< -o $@

$(BUILD)/fuzz/fuzz_db: tests/fuzz/fuzz_db.c tests/unit/db_sim.h include/aion/db.h include/aion/http.h \
		       include/aion/abi.h
	mkdir -p $(BUILD)/fuzz/corpus_db
	$(CLANG) $(FUZZ_CFLAGS) -Iinclude -Itests/unit $< -o $@

$(BUILD)/fuzz/fuzz_sql: tests/fuzz/fuzz_sql.c agent/sql.c agent/sql.h
	mkdir -p $(BUILD)/fuzz/corpus_sql
	$(CLANG) $(FUZZ_CFLAGS) -Iagent $< agent/sql.c -o $@

$(BUILD)/fuzz/fuzz_webconfig: tests/fuzz/fuzz_webconfig.c agent/webconfig.c agent/webconfig.h
	mkdir -p $(BUILD)/fuzz/corpus_webconfig
	$(CLANG) $(FUZZ_CFLAGS) -D_GNU_SOURCE -Iagent $< agent/webconfig.c -o $@
# The agent's parsers: tests/fuzz/fuzz_NAME.c, built with the sources it
# needs, seeded by tests/fuzz/seeds.py, FUZZ_SECONDS_NAME each.
FUZZ_AGENT         := route config config_file identity procinfo expo tlsplace
FUZZ_SRCS_route    := agent/route.c
FUZZ_SRCS_config   := agent/config.c agent/expo.c agent/strbuf.c
FUZZ_SRCS_config_file := $(FUZZ_SRCS_config)
FUZZ_SRCS_identity := agent/identity.c agent/strbuf.c agent/procinfo.c
FUZZ_SRCS_procinfo := agent/procinfo.c
FUZZ_SRCS_expo     := agent/strbuf.c
FUZZ_SRCS_tlsplace := agent/tlsplace.c
FUZZ_LIBS_config   := -lmicrohttpd -lz -lcrypt -lpthread
FUZZ_LIBS_config_file := $(FUZZ_LIBS_config)
FUZZ_LIBS_expo     := -lmicrohttpd -lz -lcrypt -lpthread
FUZZ_LIBS_tlsplace := -lelf -lz
FUZZ_OPTS_tlsplace := -max_len=16384
FUZZ_DEPS_expo     := agent/expo.c
FUZZ_DEPS_config_file := tests/fuzz/fuzz_config.c
# 2 s each (libFuzzer stops a second late: 3.5 s of wall time), the file
# layer of the config 1 s: `make fuzz` takes 23 s more than with the first three.
FUZZ_SECONDS_config_file ?= $(if $(FUZZ_SECONDS),$(FUZZ_SECONDS),1)
$(foreach f,$(FUZZ_AGENT),$(eval FUZZ_SECONDS_$(f) ?= $(if $(FUZZ_SECONDS),$(FUZZ_SECONDS),2)))
define fuzz_agent_rule
$(BUILD)/fuzz/fuzz_$(1): tests/fuzz/fuzz_$(1).c $(FUZZ_SRCS_$(1)) $(wildcard agent/*.h) $(FUZZ_DEPS_$(1))
	@mkdir -p $(BUILD)/fuzz
	$(CLANG) $(FUZZ_CFLAGS) -D_GNU_SOURCE -Iagent $$< $(FUZZ_SRCS_$(1)) -o $$@ $(FUZZ_LIBS_$(1))
endef
$(foreach f,$(FUZZ_AGENT),$(eval $(call fuzz_agent_rule,$(f))))
# Tiny libraries shaped like OpenSSL and GnuTLS (and one that needs libssl)
# as fuzz_tlsplace seeds, next to the machine's smallest ELF files.
FUZZ_STUB_FLAGS := -shared -fPIC -O2 -nostdlib -g0 -Wl,--build-id=none -Wl,-z,noseparate-code
fuzz-seeds: tests/fuzz/tls_stub.c
	@mkdir -p $(BUILD)/fuzz/corpus_tlsplace
	@/usr/bin/python3 tests/fuzz/seeds.py $(BUILD)/fuzz
	@cd $(BUILD)/fuzz/corpus_tlsplace && \
	  $(CC) $(FUZZ_STUB_FLAGS) -DOPENSSL -Wl,-soname,libssl.so.3 $(CURDIR)/$< -o libssl.so.3 && \
	  $(CC) $(FUZZ_STUB_FLAGS) -DGNUTLS -Wl,-soname,libgnutls.so.30 $(CURDIR)/$< -o libgnutls.so.30 && \
	  $(CC) $(FUZZ_STUB_FLAGS) $(CURDIR)/$< -o needs_ssl.so -L. -l:libssl.so.3

# $(call run_fuzz,name,seconds,corpus,log,what,options): run one fuzzer.
define run_fuzz
@$(BUILD)/fuzz/fuzz_$(1) -max_total_time=$(2) -print_final_stats=1 $(6) \
  -artifact_prefix=$(BUILD)/fuzz/$(if $(filter http,$(1)),,$(1)-) $(3) > $(4) 2>&1; rc=$$?; \
  echo "fuzz_$(1):"; grep -E '^Done|^stat::(number_of_executed_units|new_units_added|peak_rss)' $(4); \
  if [ $$rc -ne 0 ]; then grep -A40 -E '==ERROR|deadly signal|Test unit written' $(4) | head -80; \
    echo "fuzz: the $(5) failed on an input saved under $(BUILD)/fuzz/ (log: $(4))"; exit 1; fi
endef

# One of the agent's parsers; an input that takes 10 s is a hang.
run_fuzz_agent = $(call run_fuzz,$(1),$(FUZZ_SECONDS_$(1)),$(BUILD)/fuzz/corpus_$(1),$(BUILD)/fuzz/log_$(1),$(2),-timeout=10 $(FUZZ_OPTS_$(1)))
fuzz: $(BUILD)/fuzz/fuzz_http $(BUILD)/fuzz/fuzz_db $(BUILD)/fuzz/fuzz_sql \
      $(FUZZ_AGENT:%=$(BUILD)/fuzz/fuzz_%) fuzz-seeds \
      $(BUILD)/fuzz/fuzz_webconfig
	cp -n tests/unit/captures/*.bin $(BUILD)/fuzz/corpus/ 2>/dev/null || true
	@/usr/bin/python3 tests/unit/captures/db/capture.py seeds $(BUILD)/fuzz/corpus_db $(BUILD)/fuzz/corpus_sql >/dev/null
	$(call run_fuzz,http,$(FUZZ_SECONDS_HTTP),$(BUILD)/fuzz/corpus,$(BUILD)/fuzz/log,HTTP parser,)
	$(call run_fuzz,db,$(FUZZ_SECONDS_DB),$(BUILD)/fuzz/corpus_db,$(BUILD)/fuzz/log_db,database parsers,-max_len=32768)
	$(call run_fuzz,sql,$(FUZZ_SECONDS_SQL),$(BUILD)/fuzz/corpus_sql,$(BUILD)/fuzz/log_sql,SQL tokenizer,-max_len=512)
	cp -n tests/fuzz/seeds_webconfig/*.yml $(BUILD)/fuzz/corpus_webconfig/ 2>/dev/null || true
	$(call run_fuzz,webconfig,$(FUZZ_SECONDS_WEBCONFIG),$(BUILD)/fuzz/corpus_webconfig,$(BUILD)/fuzz/log_webconfig,web config parser,-max_len=4096)
	$(call run_fuzz_agent,route,route normalisation)
	$(call run_fuzz_agent,config,config parser)
	$(call run_fuzz_agent,config_file,config file reader)
	$(call run_fuzz_agent,identity,cgroup and log name parser)
	$(call run_fuzz_agent,procinfo,/proc parser)
	$(call run_fuzz_agent,expo,listen and Accept-Encoding parser)
	$(call run_fuzz_agent,tlsplace,ELF reader)

integration: $(BUILD)/aion-agent
	/usr/bin/python3 tests/integration/run.py --agent $(BUILD)/aion-agent

# Every shipped file under deploy/ checked offline by a real tool: promtool,
# the Kubernetes and prometheus-operator schemas (npm packages pinned in
# deploy/check, installed under $(BUILD)/deploy-check), the agent's config
# parser, systemd-analyze, the container image's tree. deploy-gen rewrites
# the PrometheusRule from deploy/prometheus/rules.
deploy-check: $(BUILD)/aion-agent
	sh deploy/check/deploy-check.sh $(BUILD)
deploy-gen:
	sh deploy/check/deploy-check.sh $(BUILD) gen
# Soak (tests/soak/README.md): SOAK_SECONDS of mixed load (hour-capable),
# then 10,000 series under the RSS limit. `make test` runs it for 90 s.
SOAK_SECONDS ?= 120
soak: $(BUILD)/aion-agent
	/usr/bin/python3 tests/soak/soak.py --agent $(BUILD)/aion-agent --duration $(SOAK_SECONDS)

# The one command that sets up and passes every test (CI runs exactly this).
test: deps
	$(MAKE) all
	$(MAKE) deploy-check
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) fuzz
	$(MAKE) integration
	$(MAKE) soak SOAK_SECONDS=90

# Overhead benchmark (tests/bench/README.md): ~11 minutes; BENCH_ARGS=--quick for ~3.
include tests/bench/Makefile.inc
bench: bench-deps
	$(MAKE) all
	$(MAKE) bench-tools
	/usr/bin/python3 tests/bench/bench.py --agent $(BUILD)/aion-agent --build $(BUILD) $(BENCH_ARGS)

# Run the agent on every process of the host, metrics on $(LISTEN).
run: deps
	$(MAKE) all
	$(BUILD)/aion-agent --all --listen $(LISTEN)

clean:
	rm -rf $(BUILD)

-include $(wildcard $(BUILD)/*.d $(BUILD)/agent/*.d $(BUILD)/tests/*.d)
