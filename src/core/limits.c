#include "limits.h"

#include <stddef.h>
#include <string.h>

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)
#define F(field) offsetof(struct sbx_limits, field)

/* Defaults per level: high, medium, low, untrusted (PRODUCT.md "Trust levels"). Bounds keep a
 * caller from asking for something the host cannot give or that makes no sense (a 0 ms run). */
const struct limit_def limit_table[] = {
	{"timeout_ms", "--timeout", LIMIT_MS, F(wall_ms), 1, 24 * 3600 * 1000ULL,
	 {60000, 30000, 10000, 5000}},
	{"cpu_time_ms", "--cpu-time", LIMIT_MS, F(cpu_ms), 1, 24 * 3600 * 1000ULL,
	 {30000, 10000, 5000, 2000}},
	{"memory_mb", "--memory", LIMIT_BYTES, F(memory_bytes), 4 * MiB, 256 * GiB,
	 {1024 * MiB, 512 * MiB, 256 * MiB, 128 * MiB}},
	{"processes", "--pids", LIMIT_COUNT, F(pids), 1, 65536, {256, 64, 32, 8}},
	{"open_files", "--nofile", LIMIT_COUNT, F(nofile), 4, 65536, {1024, 256, 64, 64}},
	{"file_size_bytes", "--fsize", LIMIT_BYTES, F(fsize_bytes), 1, 64 * GiB,
	 {1 * GiB, 100 * MiB, 10 * MiB, 10 * MiB}},
	{"max_files", "--max-files", LIMIT_COUNT, F(max_files), 16, 10000000,
	 {100000, 10000, 1000, 1000}},
	{"disk_mb", "--disk", LIMIT_BYTES, F(disk_bytes), 1 * MiB, 64 * GiB,
	 {1 * GiB, 256 * MiB, 64 * MiB, 16 * MiB}},
	{"output_bytes", "--output", LIMIT_BYTES, F(output_bytes), 1, 1 * GiB,
	 {16 * MiB, 4 * MiB, 1 * MiB, 1 * MiB}},
};
const size_t limit_table_len = sizeof(limit_table) / sizeof(limit_table[0]);

static uint64_t *field(struct sbx_limits *l, size_t off)
{
	return (uint64_t *)((char *)l + off);
}

void limits_default(enum trust_level trust, struct sbx_limits *ret)
{
	memset(ret, 0, sizeof(*ret));
	for (size_t i = 0; i < limit_table_len; i++)
		*field(ret, limit_table[i].offset) = limit_table[i].def[trust];
}

void limits_compile(struct sbx_limits *ret)
{
	/* gcc/g++ on a large file needs room; still bounded so a hostile source (e.g. a template
	 * bomb) cannot hold the host. */
	*ret = (struct sbx_limits){
		.wall_ms = 30000, .cpu_ms = 20000, .memory_bytes = 1 * GiB, .pids = 64,
		.nofile = 256, .fsize_bytes = 256 * MiB, .max_files = 10000, .disk_bytes = 512 * MiB,
		.output_bytes = 1 * MiB,
	};
}

int limits_check(const struct sbx_limits *l, struct cdn_err *err)
{
	for (size_t i = 0; i < limit_table_len; i++) {
		const struct limit_def *d = &limit_table[i];
		uint64_t v = *field((struct sbx_limits *)l, d->offset);
		if (v < d->min || v > d->max)
			return err_set(err, 0, "%s out of range: %llu not in [%llu, %llu]%s",
				       d->cli_option, (unsigned long long)v,
				       (unsigned long long)d->min, (unsigned long long)d->max,
				       d->unit == LIMIT_MS ? " ms"
				       : d->unit == LIMIT_BYTES ? " bytes" : "");
	}
	return 0;
}

static const char *const trust_names[TRUST__COUNT] = {"high", "medium", "low", "untrusted"};

int trust_parse(const char *name, enum trust_level *ret)
{
	for (int i = 0; i < TRUST__COUNT; i++)
		if (name && !strcmp(name, trust_names[i])) {
			*ret = (enum trust_level)i;
			return 0;
		}
	return -EINVAL;
}

const char *trust_name(enum trust_level t)
{
	return t < TRUST__COUNT ? trust_names[t] : "unknown";
}
