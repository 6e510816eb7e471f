#include "hearth/common/workers.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <exception>
#include <thread>

#include "hearth/common/log.hpp"

namespace hearth {

namespace {

void run_logging(boost::asio::io_context& io, const char* event) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      log::error(event, {{"what", e.what()}});
    }
  }
}

}  // namespace

void run_contexts(boost::asio::io_context& control,
                  std::vector<std::unique_ptr<boost::asio::io_context>>& workers) {
  std::vector<std::thread> threads;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards;
  for (auto& w : workers) {
    guards.push_back(boost::asio::make_work_guard(*w));
    threads.emplace_back([&io = *w] { run_logging(io, "worker.exception"); });
  }
  run_logging(control, "control.exception");
  for (auto& w : workers) w->stop();
  for (auto& t : threads) t.join();
}

}  // namespace hearth
