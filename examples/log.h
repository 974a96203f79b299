/*
 * log.h - Go's log.Println for the examples: one line on standard error,
 * prefixed with the local date and time as "2006/01/02 15:04:05 ", so that
 * a C example prints what its Go original prints (the tests strip the
 * prefix before comparing). Lines from several threads never interleave.
 */
#ifndef KN_EXAMPLES_LOG_H
#define KN_EXAMPLES_LOG_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

__attribute__((format(printf, 1, 2)))
static inline void kn_log(const char *fmt, ...)
{
	char line[1024];
	struct tm tm;
	time_t now = time(NULL);
	size_t n;
	va_list ap;

	localtime_r(&now, &tm);
	n = strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S ", &tm);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	/* Println ends the line; a message that has its newline keeps one. */
	n = strlen(line);
	if (n == 0 || line[n - 1] != '\n')
		strcpy(line + n, "\n");
	fputs(line, stderr); /* one locked write per line */
}

#endif
