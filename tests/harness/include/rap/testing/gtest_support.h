// gtest glue for rap::Result: include only from test sources.
#pragma once

#include <gtest/gtest.h>

#define RAP_TESTING_CONCAT_INNER(a, b) a##b
#define RAP_TESTING_CONCAT(a, b) RAP_TESTING_CONCAT_INNER(a, b)

// ASSERT that a rap::Result<...> holds a value; prints code and message otherwise.
#define RAP_ASSERT_OK(expr) \
  RAP_TESTING_ASSERT_OK_IMPL(RAP_TESTING_CONCAT(rap_result_, __LINE__), expr)
#define RAP_TESTING_ASSERT_OK_IMPL(var, expr)                                        \
  do {                                                                               \
    const auto& var = (expr);                                                        \
    ASSERT_TRUE(var.has_value()) << #expr << " failed: " << var.error().code << ": " \
                                 << var.error().message;                             \
  } while (0)

#define RAP_EXPECT_OK(expr) \
  RAP_TESTING_EXPECT_OK_IMPL(RAP_TESTING_CONCAT(rap_result_, __LINE__), expr)
#define RAP_TESTING_EXPECT_OK_IMPL(var, expr)                                        \
  do {                                                                               \
    const auto& var = (expr);                                                        \
    EXPECT_TRUE(var.has_value()) << #expr << " failed: " << var.error().code << ": " \
                                 << var.error().message;                             \
  } while (0)

// auto lhs = value of a Result, or ASSERT-fail with its error. lhs may be a declaration:
//   RAP_ASSIGN_OR_FAIL(auto pg, PostgresFixture::start());
#define RAP_ASSIGN_OR_FAIL(lhs, expr) \
  RAP_TESTING_ASSIGN_OR_FAIL_IMPL(RAP_TESTING_CONCAT(rap_result_, __LINE__), lhs, expr)
#define RAP_TESTING_ASSIGN_OR_FAIL_IMPL(var, lhs, expr)                            \
  auto var = (expr);                                                               \
  ASSERT_TRUE(var.has_value()) << #expr << " failed: " << var.error().code << ": " \
                               << var.error().message;                             \
  lhs = std::move(*var)
