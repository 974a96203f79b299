/*
 * child.h - running part of a test in a child process (fork): for what
 * must kill or abort a process, or must work in a child of fork().
 *
 * kt_child(fn, arg, out, size) runs fn(arg) in a child, which exits 0 if
 * fn returns, and returns the child's wait status. With out not NULL the
 * child's stderr is captured there (at most size - 1 bytes, then a NUL);
 * with NULL it goes where the test's own goes. A child that hangs is
 * killed by SIGALRM after KT_CHILD_S seconds, which its status shows.
 */
#ifndef KT_CHILD_H
#define KT_CHILD_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define KT_CHILD_S 20

static inline int kt_child(void (*fn)(void *), void *arg, char *out, size_t size)
{
	int fds[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	if (out)
		cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		alarm(KT_CHILD_S);
		if (out) {
			dup2(fds[1], STDERR_FILENO);
			close(fds[0]);
		}
		fn(arg);
		_exit(0);
	}
	if (out) {
		close(fds[1]);
		while (got < size - 1 && (n = read(fds[0], out + got, size - 1 - got)) > 0)
			got += (size_t)n;
		out[got] = 0;
		close(fds[0]);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return status;
}

#endif
