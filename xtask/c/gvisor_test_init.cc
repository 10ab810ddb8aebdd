// vrift's stand-in for gVisor's test/util/test_util_impl.cc: the same TestInit
// and RunAllTests without Google Benchmark (no benchmark runs here, and its
// Debian package is one more dependency for nothing).
#include <signal.h>
#include "gtest/gtest.h"
#include "absl/flags/parse.h"
#include "test/util/logging.h"
namespace gvisor {
namespace testing {
void SetupGvisorDeathTest() {}
void TestInit(int* argc, char*** argv) {
  ::testing::InitGoogleTest(argc, *argv);
  ::absl::ParseCommandLine(*argc, *argv);
  struct sigaction sa = {};
  sa.sa_handler = SIG_IGN;
  TEST_CHECK(sigaction(SIGPIPE, &sa, nullptr) == 0);
}
int RunAllTests() { return RUN_ALL_TESTS(); }
}  // namespace testing
}  // namespace gvisor
