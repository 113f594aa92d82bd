#include <doctest/doctest.h>

#include <cerrno>
#include <fcntl.h>
#include <sys/wait.h>

#include "test_util.hpp"

using namespace flotilla::store;
using namespace flotilla::store::test;

TEST_SUITE("store") {

  TEST_CASE("ENOSPC: the batch fails and is cut back and later syncs work") {
    temp_dir d;
    std::string err;
    auto seg = d / "journal-00000000000000000000.seg";
    {
      auto o = open_journal(d.path);
      auto& j = *o->j;
      REQUIRE(j.append_publish(1, 1, "durable"));
      REQUIRE(j.sync(err));
      auto size = file_size(seg);
      j.fail_next_write_for_test(ENOSPC, 30);
      REQUIRE(j.append_publish(1, 2, "lost"));
      REQUIRE(j.append_publish(1, 3, "lost too"));
      j.append_ack(1, 1);
      CHECK_FALSE(j.sync(err));
      CHECK(err.find("No space left on device") != std::string::npos);
      CHECK(err.find(seg) != std::string::npos);
      CHECK(file_size(seg) == size); // the partial write was cut back
      CHECK(j.buffered_records() == 0);
      CHECK_FALSE(j.is_live(1, 2));
      CHECK(j.is_live(1, 1)); // the failed ack did not count
      CHECK(j.stats().failed_syncs == 1);
      // Space is back.
      REQUIRE(j.append_publish(1, 4, "after"));
      REQUIRE(j.sync(err));
    }
    auto o = open_journal(d.path);
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->report.truncated_bytes == 0);
    CHECK(o->rec.messages
          == std::vector<msg>{{1, 1, "durable"}, {1, 4, "after"}});
  }

  TEST_CASE("a failed write that cannot be cut back is cut by the next sync") {
    temp_dir d;
    std::string err;
    auto seg = d / "journal-00000000000000000000.seg";
    auto o = open_journal(d.path);
    auto& j = *o->j;
    REQUIRE(j.append_publish(1, 1, "durable"));
    REQUIRE(j.sync(err));
    auto size = file_size(seg);
    j.fail_next_write_for_test(ENOSPC, 30, true);
    REQUIRE(j.append_publish(1, 2, std::string(100, 'x')));
    CHECK_FALSE(j.sync(err));
    CHECK(file_size(seg) == size + 30); // garbage at the end
    REQUIRE(j.append_publish(1, 3, "next"));
    REQUIRE(j.sync(err));
    CHECK(file_size(seg) == size + publish_size(4));
    o->j.reset();
    auto again = open_journal(d.path);
    REQUIRE(again->j);
    CHECK(again->report.truncated_bytes == 0);
    CHECK(again->rec.messages
          == std::vector<msg>{{1, 1, "durable"}, {1, 3, "next"}});
  }

  TEST_CASE("a failed write left behind by a crash is a torn tail") {
    temp_dir d;
    std::string err;
    {
      auto o = open_journal(d.path);
      auto& j = *o->j;
      REQUIRE(j.append_publish(1, 1, "durable"));
      REQUIRE(j.sync(err));
      j.fail_next_write_for_test(ENOSPC, 50, true);
      REQUIRE(j.append_publish(1, 2, std::string(100, 'x')));
      REQUIRE(j.append_publish(1, 3, std::string(100, 'y')));
      CHECK_FALSE(j.sync(err));
    } // the process "dies" here without another sync
    auto o = open_journal(d.path);
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->report.truncated_bytes == 50);
    CHECK(o->rec.messages == std::vector<msg>{{1, 1, "durable"}});
  }

  TEST_CASE("a failed fdatasync fails the batch and the journal goes on") {
    temp_dir d;
    std::string err;
    auto seg = d / "journal-00000000000000000000.seg";
    {
      auto o = open_journal(d.path);
      auto& j = *o->j;
      REQUIRE(j.append_publish(1, 1, "durable"));
      REQUIRE(j.sync(err));
      auto size = file_size(seg);
      j.fail_next_fdatasync_for_test(EIO);
      REQUIRE(j.append_publish(1, 2, "unsure"));
      CHECK_FALSE(j.sync(err));
      CHECK(err.find("fdatasync") != std::string::npos);
      CHECK(file_size(seg) == size);
      REQUIRE(j.append_publish(1, 3, "after"));
      REQUIRE(j.sync(err));
    }
    auto o = open_journal(d.path);
    REQUIRE(o->j);
    CHECK(o->rec.messages
          == std::vector<msg>{{1, 1, "durable"}, {1, 3, "after"}});
  }

  TEST_CASE("a crash around sync or roll keeps every synced record") {
    for (const char* point :
         {"journal.after_write_before_sync", "journal.after_sync",
          "journal.roll_after_create"}) {
      CAPTURE(point);
      temp_dir d;
      auto opts = options(d.path);
      opts.segment_bytes = 200;
      std::string err;
      {
        auto o = open_journal(opts);
        REQUIRE(o->j->append_publish(1, 1, "synced"));
        REQUIRE(o->j->sync(err));
      }
      int status = run_child(point, [&] {
        recorder rec;
        recovery_report rep;
        std::string e;
        auto j = journal::open(opts, rec, rep, e);
        if (!j)
          ::_exit(3);
        for (uint64_t id = 2; id < 20; ++id) {
          if (!j->append_publish(1, id, std::string(60, 'c')) || !j->sync(e))
            ::_exit(5);
        }
        ::_exit(4);
      });
      REQUIRE(status == 99);
      auto o = open_journal(opts);
      REQUIRE_MESSAGE(o->j, o->error);
      REQUIRE(!o->rec.messages.empty());
      CHECK(o->rec.messages[0] == msg{1, 1, "synced"});
      // Ids 2.. were synced in order up to the crash: no gaps.
      for (size_t i = 0; i < o->rec.messages.size(); ++i)
        CHECK(o->rec.messages[i].msg_id == i + 1);
      REQUIRE(o->j->append_publish(1, 100, "after"));
      REQUIRE(o->j->sync(err));
    }
  }

  TEST_CASE("crash_point reads FLOTILLA_CRASH_POINT and exits 99") {
    set_crash_point_for_test(nullptr);
    crash_point("journal.after_sync"); // disarmed: nothing happens
    CHECK(std::string{configured_crash_point()}.empty());
    temp_dir d;
    int err_pipe[2];
    REQUIRE(::pipe(err_pipe) == 0);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(err_pipe[1], 2);
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::setenv("FLOTILLA_CRASH_POINT", "journal.after_sync", 1);
      ::setenv("FLOTILLA_STORE_TEST_CHILD_DIR", d.path.c_str(), 1);
      ::execl("/proc/self/exe", "flotilla_store_tests",
              "--test-case=crash point child*", static_cast<char*>(nullptr));
      ::_exit(7);
    }
    ::close(err_pipe[1]);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(err_pipe[0], buf, sizeof buf)) > 0)
      out.append(buf, static_cast<size_t>(n));
    ::close(err_pipe[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 99);
    CHECK(out.find("crash point journal.after_sync") != std::string::npos);
    auto o = open_journal(d.path);
    REQUIRE(o->j);
    CHECK(o->rec.messages == std::vector<msg>{{1, 1, "from the child"}});
  }

  TEST_CASE(
    "crash point child (does nothing unless started by the test above)") {
    const char* dir = std::getenv("FLOTILLA_STORE_TEST_CHILD_DIR");
    if (dir == nullptr)
      return;
    auto o = open_journal(dir);
    if (!o->j)
      ::_exit(3);
    std::string err;
    if (!o->j->append_publish(1, 1, "from the child") || !o->j->sync(err))
      ::_exit(5);
    ::_exit(4); // not reached: the crash point exits with 99
  }

} // TEST_SUITE
