/* SPDX-License-Identifier: Apache-2.0 */
/* Replay driver: runs a fuzz harness once per corpus file, so that every
 * seed corpus is also an ordinary test (systemd's fuzz-main.c idea). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* Corpus files are small; anything bigger is not a corpus file. */
#define MAX_FILE (16 * 1024 * 1024)

static int read_all(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t have = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "fuzz_main: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
		fprintf(stderr, "fuzz_main: %s: not a regular file of at most %d bytes\n",
			path, MAX_FILE);
		close(fd);
		return -1;
	}
	/* Exactly the file's size, so that ASan sees any read past the end
	 * of the input as the harness would under libFuzzer. */
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -1;
	}
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "fuzz_main: %s: short read\n", path);
			free(buf);
			close(fd);
			return -1;
		}
		have += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = have;
	return 0;
}

static int run_file(const char *path)
{
	uint8_t *data;
	size_t len;

	if (read_all(path, &data, &len) < 0)
		return -1;
	/* Named before it runs: if the harness aborts, this says which
	 * input did it. */
	fprintf(stderr, "fuzz_main: running %s (%zu bytes)\n", path, len);
	(void)LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

static int select_file(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

static int run_dir(const char *dir, long *count)
{
	struct dirent **list;
	int n = scandir(dir, &list, select_file, alphasort);
	int r = 0;

	if (n < 0) {
		fprintf(stderr, "fuzz_main: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char *path;
		struct stat st;

		if (r == 0 && asprintf(&path, "%s/%s", dir, list[i]->d_name) >= 0) {
			/* Not recursive: subdirectories are skipped. */
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				r = run_file(path);
				if (r == 0)
					(*count)++;
			}
			free(path);
		}
		free(list[i]);
	}
	free(list);
	return r;
}

int main(int argc, char **argv)
{
	long count = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int r;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "fuzz_main: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			r = run_dir(argv[i], &count);
		} else {
			r = run_file(argv[i]);
			if (r == 0)
				count++;
		}
		if (r < 0)
			return 1;
	}
	printf("%s: %ld inputs ran\n", argv[0], count);
	if (count == 0) {
		fprintf(stderr, "fuzz_main: no inputs found\n");
		return 1;
	}
	if (fuzz_replay_done && fuzz_replay_done(count) != 0)
		return 1;
	return 0;
}
