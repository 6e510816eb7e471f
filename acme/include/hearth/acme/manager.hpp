#pragma once
// The maintenance loop (certmagic's model): one managed certificate per hostname,
// loaded from Storage at start, ordered when missing or unreadable, renewed in the
// background when a third of its lifetime is left (or acme.renew_before, or the
// CA's ARI window), with a jittered schedule and exponential back-off on failure.
// Runs on one io_context (the edge's control context); all its methods must be
// called there except status_json() and prometheus(), which lock.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "hearth/acme/certs.hpp"
#include "hearth/acme/messages.hpp"
#include "hearth/config/config.hpp"

namespace hearth::acme {

namespace asio = boost::asio;

class ChallengeBoard;
class Client;
class Storage;

struct ManagedCert {
  std::vector<std::string> names;
  std::string chain_pem, key_pem;
};

class Manager : public std::enable_shared_from_this<Manager> {
 public:
  // Called (on the control context) with every usable certificate whenever one changes.
  using Install = std::function<void(const std::vector<ManagedCert>&)>;

  Manager(asio::io_context& control, config::AcmeConfig cfg, std::filesystem::path state_dir,
          std::shared_ptr<ChallengeBoard> board, Install install);
  ~Manager();

  // The hostnames to manage. New ones are loaded from storage or ordered; dropped
  // ones stop being renewed and served. Loads stored certificates synchronously.
  void set_names(const std::vector<std::string>& names);
  void start();  // the Manager must be owned by a shared_ptr
  void stop();

  std::string status_json() const;  // [{"name":...,...}]
  std::string prometheus() const;   // expiry gauge and order counters, with HELP/TYPE

 private:
  struct Entry {
    std::string name;
    std::optional<CertInfo> info;
    std::string chain_pem, key_pem;
    std::chrono::system_clock::time_point due, next_renewal;
    std::optional<RenewalWindow> window;
    int failures = 0;
    std::string last_error;
    bool active = true;
  };
  // Holds `self`: the loop's frame may outlive the owner until the context is destroyed.
  asio::awaitable<void> run(std::shared_ptr<Manager> self);
  asio::awaitable<void> process(std::string name);
  asio::awaitable<void> ensure_client();
  bool load_stored(Entry& e, bool log_problems);
  void schedule(Entry& e);
  void fail(Entry& e, const std::string& error, std::optional<std::chrono::seconds> retry);
  void install();
  Entry* find(const std::string& name);
  std::string account_dir() const;

  asio::io_context& control_;
  config::AcmeConfig cfg_;
  std::shared_ptr<Storage> storage_;
  std::shared_ptr<ChallengeBoard> board_;
  Install install_;
  std::unique_ptr<Client> client_;
  asio::steady_timer wake_;
  bool running_ = false;
  bool stopped_ = false;
  mutable std::mutex mu_;  // guards entries_ and the counters against status readers
  std::vector<Entry> entries_;
  std::uint64_t orders_ok_ = 0, orders_failed_ = 0;
};

}  // namespace hearth::acme
