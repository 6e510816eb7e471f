#pragma once
// The thread layout of both processes: one io_context per worker thread, and
// a control io_context (acceptors, signals, admin) on the calling thread.

#include <boost/asio/io_context.hpp>
#include <memory>
#include <vector>

namespace hearth {

// Runs every worker context on a thread of its own and `control` on the
// calling thread until control stops (control.stop(), or it runs out of
// work); then stops the workers and joins their threads. An exception that
// escapes a handler is logged (worker.exception / control.exception) and that
// context keeps running: one bug must not take the process down.
void run_contexts(boost::asio::io_context& control,
                  std::vector<std::unique_ptr<boost::asio::io_context>>& workers);

}  // namespace hearth
