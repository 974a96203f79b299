/*
 * A Criterion-compatible shim for the ThreadSanitizer build.
 *
 * Criterion's sandbox (boxfort) cannot start under ThreadSanitizer: its
 * inheritable arena collides with TSan's memory layout (Criterion issue
 * #274, open). This header implements the subset of Criterion's API that
 * kanal's tests use - Test() with .init/.fini/.disabled/.timeout, the
 * cr_assert and cr_expect families - over a small runner (crshim.c) that
 * forks one child per test, as Criterion does. The other builds use the
 * real Criterion.
 */
#ifndef KN_CRSHIM_H
#define KN_CRSHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct crs_test {
	const char *suite, *name;
	void (*fn)(void);
	void (*init)(void);
	void (*fini)(void);
	bool disabled;
	double timeout;
	const char *description;
};

void crs_register(struct crs_test *t);
void crs_check(bool ok, bool fatal, const char *file, int line,
	       const char *expr, const char *fmt, ...);

#define Test(s_, n_, ...)                                                      \
	static void s_##_##n_##_impl(void);                                    \
	static struct crs_test s_##_##n_##_desc = {                            \
		.suite = #s_, .name = #n_, .fn = s_##_##n_##_impl,             \
		__VA_ARGS__                                                    \
	};                                                                     \
	__attribute__((constructor)) static void s_##_##n_##_reg(void)         \
	{                                                                      \
		crs_register(&s_##_##n_##_desc);                               \
	}                                                                      \
	static void s_##_##n_##_impl(void)

#define CRS_CHECK(fatal, cond, expr, ...)                                      \
	crs_check(!!(cond), fatal, __FILE__, __LINE__, expr, "" __VA_ARGS__)

#define cr_assert(c, ...) CRS_CHECK(true, c, #c, __VA_ARGS__)
#define cr_expect(c, ...) CRS_CHECK(false, c, #c, __VA_ARGS__)
#define cr_assert_not(c, ...) CRS_CHECK(true, !(c), "!(" #c ")", __VA_ARGS__)
#define cr_expect_not(c, ...) CRS_CHECK(false, !(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_fail(...) CRS_CHECK(true, 0, "fail", __VA_ARGS__)

#define CRS_CMP(fatal, a, op, b, ...)                                          \
	CRS_CHECK(fatal, (a) op (b), #a " " #op " " #b, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) CRS_CMP(true, a, ==, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) CRS_CMP(true, a, !=, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) CRS_CMP(true, a, <, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) CRS_CMP(true, a, <=, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) CRS_CMP(true, a, >, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) CRS_CMP(true, a, >=, b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) CRS_CMP(false, a, ==, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) CRS_CMP(false, a, !=, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) CRS_CMP(false, a, <, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) CRS_CMP(false, a, <=, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) CRS_CMP(false, a, >, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) CRS_CMP(false, a, >=, b, __VA_ARGS__)
#define cr_assert_null(p, ...) CRS_CHECK(true, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) CRS_CHECK(true, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_expect_null(p, ...) CRS_CHECK(false, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) CRS_CHECK(false, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                            \
	CRS_CHECK(true, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...)                                            \
	CRS_CHECK(false, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_log_info(...) ((void)0)

#endif
