#include "hearth/acme/manager.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <random>

#include "hearth/acme/challenges.hpp"
#include "hearth/acme/client.hpp"
#include "hearth/acme/codec.hpp"
#include "hearth/acme/storage.hpp"
#include "hearth/common/log.hpp"

namespace hearth::acme {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr auto kMaxBackoff = std::chrono::hours(6);

std::mt19937_64& rng() {
  static thread_local std::mt19937_64 r{std::random_device{}()};
  return r;
}

// A random duration in [0, max].
Clock::duration random_upto(Clock::duration max) {
  if (max.count() <= 0) return Clock::duration::zero();
  std::uniform_int_distribution<Clock::rep> d(0, max.count());
  return Clock::duration(d(rng()));
}

std::string cert_key(const std::string& name) {
  return "certificates/" + storage_segment(name) + "/cert.pem";
}
std::string key_key(const std::string& name) {
  return "certificates/" + storage_segment(name) + "/key.pem";
}

long long unix_seconds(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::error("acme.bug", {{"what", ex.what()}});
  }
}

}  // namespace

Manager::Manager(asio::io_context& control, config::AcmeConfig cfg, std::filesystem::path state_dir,
                 std::shared_ptr<ChallengeBoard> board, Install install)
    : control_(control),
      cfg_(std::move(cfg)),
      storage_(std::make_shared<FileStorage>(state_dir / "acme")),
      board_(std::move(board)),
      install_(std::move(install)),
      wake_(control) {}

Manager::~Manager() = default;

Manager::Entry* Manager::find(const std::string& name) {
  for (auto& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::string Manager::account_dir() const { return "accounts/" + storage_segment(cfg_.directory); }

bool Manager::load_stored(Entry& e, bool log_problems) {
  auto chain = storage_->load(cert_key(e.name));
  auto key = storage_->load(key_key(e.name));
  if (!chain && !key) return false;
  std::string error;
  std::optional<CertInfo> info;
  if (!chain || !key) {
    error = !chain ? "certificate file missing" : "key file missing";
  } else {
    info = inspect_chain(*chain, *key, &error);
  }
  if (info && std::find(info->names.begin(), info->names.end(), e.name) == info->names.end()) {
    error = "it does not cover " + e.name;
    info.reset();
  }
  if (info && info->not_after <= Clock::now()) {
    error = "it expired at " + format_rfc3339(info->not_after);
    info.reset();
  }
  if (!info) {
    if (log_problems) {
      log::warn("acme.stored_invalid",
                {{"name", e.name},
                 {"file",
                  (static_cast<FileStorage*>(storage_.get())->root() / cert_key(e.name)).string()},
                 {"error", error},
                 {"action", "ordering a new certificate"}});
    }
    return false;
  }
  bool changed = !e.info || e.info->serial_hex != info->serial_hex;
  e.info = info;
  e.chain_pem = std::move(*chain);
  e.key_pem = std::move(*key);
  if (changed && log_problems) {
    log::info("acme.certificate.loaded", {{"name", e.name},
                                          {"serial", e.info->serial_hex},
                                          {"not_after", format_rfc3339(e.info->not_after)}});
  }
  return true;
}

void Manager::set_names(const std::vector<std::string>& names) {
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    for (auto& e : entries_) {
      bool wanted = std::find(names.begin(), names.end(), e.name) != names.end();
      if (e.active != wanted) changed = true;
      e.active = wanted;
    }
    for (const auto& n : names) {
      if (find(n) != nullptr) continue;
      Entry e;
      e.name = n;
      if (load_stored(e, true)) {
        schedule(e);
        changed = true;
      } else {
        e.due = Clock::now();
        log::info("acme.certificate.missing", {{"name", n}, {"action", "ordering"}});
      }
      entries_.push_back(std::move(e));
    }
  }
  if (changed) install();
  wake_.cancel();
}

void Manager::start() {
  if (running_) return;
  running_ = true;
  asio::co_spawn(control_, run(shared_from_this()), log_exception);
}

void Manager::stop() {
  stopped_ = true;
  wake_.cancel();
}

void Manager::install() {
  std::vector<ManagedCert> certs;
  {
    std::lock_guard lock(mu_);
    for (const auto& e : entries_) {
      if (e.active && e.info) certs.push_back({e.info->names, e.chain_pem, e.key_pem});
    }
  }
  install_(certs);
}

void Manager::schedule(Entry& e) {
  const auto now = Clock::now();
  const auto life = e.info->not_after - e.info->not_before;
  const auto before = cfg_.renew_before
                          ? std::chrono::duration_cast<Clock::duration>(*cfg_.renew_before)
                          : life / 3;
  Clock::time_point t = e.info->not_after - before;
  // Jitter: spread renewals of many certificates (and of many edges) over a window.
  t -= random_upto(std::min<Clock::duration>(life / 50, std::chrono::hours(2)));
  if (e.window) t = e.window->start + random_upto(e.window->end - e.window->start);
  // Never sooner than retry_base from now: a renew_before longer than the lifetime
  // renews once per retry_base, not in a loop.
  t = std::max(t, now + std::chrono::duration_cast<Clock::duration>(cfg_.retry_base));
  e.due = t;
  e.next_renewal = t;
}

void Manager::fail(Entry& e, const std::string& error, std::optional<std::chrono::seconds> retry) {
  ++e.failures;
  ++orders_failed_;
  e.last_error = error;
  auto delay = std::chrono::duration_cast<Clock::duration>(cfg_.retry_base);
  for (int i = 1; i < e.failures && delay < kMaxBackoff; ++i) delay *= 2;
  delay = std::min<Clock::duration>(delay, kMaxBackoff);
  if (retry && *retry > delay) delay = std::min<Clock::duration>(*retry, 24h);
  delay += random_upto(delay / 10);
  e.due = Clock::now() + delay;
  e.next_renewal = e.due;
  log::warn("acme.order.failed",
            {{"name", e.name},
             {"error", error},
             {"attempt", e.failures},
             {"retry_in_ms", std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()},
             {"serving", e.info ? "the previous certificate" : "no certificate"}});
}

asio::awaitable<void> Manager::ensure_client() {
  if (client_) co_return;
  ClientOptions opts;
  opts.directory_url = cfg_.directory;
  opts.ca_file = cfg_.ca_file;
  if (!cfg_.email.empty()) opts.contacts.push_back("mailto:" + cfg_.email);
  opts.eab_kid = cfg_.eab_kid;
  opts.eab_hmac_key = cfg_.eab_hmac_key;
  opts.dns_hook = cfg_.dns_hook;
  opts.dns_hook_timeout = cfg_.dns_hook_timeout;
  auto client = std::make_unique<Client>(control_.get_executor(), opts);
  const std::string dir = account_dir();
  std::optional<Key> key;
  if (auto pem = storage_->load(dir + "/account.key")) {
    key = Key::from_pem(*pem);
    if (!key) log::warn("acme.account.key_invalid", {{"action", "creating a new account key"}});
  }
  if (!key) {
    key = Key::generate(cfg_.key_type == "rsa-2048" ? KeyType::rsa_2048 : KeyType::ecdsa_p256);
    storage_->store(dir + "/account.key", key->to_pem());
    storage_->remove(dir + "/account.url");
    log::info("acme.account.key_created", {{"alg", key->alg()}});
  }
  auto kid = storage_->load(dir + "/account.url");
  client->set_account(std::move(*key), kid ? *kid : "");
  co_await client->directory();
  client_ = std::move(client);
}

asio::awaitable<void> Manager::process(std::string name) {
  Entry* e = find(name);
  if (e == nullptr) co_return;
  auto lock = storage_->try_lock("cert-" + name);
  if (!lock) {
    log::info("acme.locked", {{"name", name}, {"reason", "another process is ordering"}});
    e->due = Clock::now() + std::chrono::duration_cast<Clock::duration>(cfg_.retry_base);
    co_return;
  }
  // Another process on this state_dir may have renewed it meanwhile.
  std::string old_serial = e->info ? e->info->serial_hex : "";
  if (load_stored(*e, false) && e->info->serial_hex != old_serial) {
    schedule(*e);
    if (e->due > Clock::now() + std::chrono::duration_cast<Clock::duration>(cfg_.retry_base)) {
      log::info("acme.certificate.loaded", {{"name", name}, {"serial", e->info->serial_hex}});
      install();
      co_return;
    }
  }
  const bool renewal = e->info.has_value();
  log::info("acme.order.start", {{"name", name}, {"renewal", renewal}});
  std::string error;
  std::optional<std::chrono::seconds> retry;
  std::optional<Issued> issued;
  try {
    co_await ensure_client();
    IssueRequest req;
    req.names = {name};
    req.key_type = cfg_.key_type == "rsa-2048" ? KeyType::rsa_2048 : KeyType::ecdsa_p256;
    req.challenges = cfg_.challenges;
    if (e->info) req.replaces = e->info->ari_id;
    issued = co_await client_->issue(req, *board_);
    auto stored_kid = storage_->load(account_dir() + "/account.url");
    if (!stored_kid || *stored_kid != client_->kid()) {
      storage_->store(account_dir() + "/account.url", client_->kid());
    }
  } catch (const AcmeError& x) {
    error = x.what();
    retry = x.retry_after;
  } catch (const std::exception& x) {
    error = x.what();
  }
  e = find(name);  // entries_ may have grown while we waited
  if (e == nullptr) co_return;
  std::optional<CertInfo> info;
  if (issued) {
    info = inspect_chain(issued->chain_pem, issued->key_pem, &error);
    if (!info) error = "the CA's certificate is unusable: " + error;
  }
  if (!info) {
    std::lock_guard guard(mu_);
    fail(*e, error, retry);
    co_return;
  }
  try {
    storage_->store(key_key(name), issued->key_pem);
    storage_->store(cert_key(name), issued->chain_pem);
  } catch (const std::exception& x) {
    log::error("acme.store_failed", {{"name", name}, {"error", x.what()}});
  }
  std::optional<RenewalWindow> window;
  if (client_) window = co_await client_->renewal_info(info->ari_id);
  e = find(name);
  if (e == nullptr) co_return;
  {
    std::lock_guard guard(mu_);
    e->info = info;
    e->chain_pem = std::move(issued->chain_pem);
    e->key_pem = std::move(issued->key_pem);
    e->failures = 0;
    e->last_error.clear();
    e->window = window;
    ++orders_ok_;
    schedule(*e);
  }
  log::info("acme.certificate.issued", {{"name", name},
                                        {"serial", info->serial_hex},
                                        {"issuer", info->issuer},
                                        {"not_after", format_rfc3339(info->not_after)},
                                        {"next_renewal", format_rfc3339(e->next_renewal)},
                                        {"renewal", renewal}});
  install();
}

asio::awaitable<void> Manager::run(std::shared_ptr<Manager> self) {
  while (!self->stopped_) {
    std::string due_name;
    auto next = Clock::now() + 60s;
    for (const auto& e : entries_) {
      if (!e.active) continue;
      if (e.due <= Clock::now() && due_name.empty()) due_name = e.name;
      next = std::min(next, e.due);
    }
    if (!due_name.empty()) {
      co_await process(due_name);
      continue;
    }
    auto delay = next - Clock::now();
    wake_.expires_after(std::max<std::chrono::steady_clock::duration>(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay), 10ms));
    co_await wake_.async_wait(tuple_awaitable);
  }
}

std::string Manager::status_json() const {
  namespace json = boost::json;
  json::array out;
  std::lock_guard lock(mu_);
  for (const auto& e : entries_) {
    if (!e.active) continue;
    json::object o;
    o["name"] = e.name;
    json::array names;
    if (e.info) {
      for (const auto& n : e.info->names) names.emplace_back(n);
    }
    o["names"] = std::move(names);
    o["issuer"] = e.info ? e.info->issuer : "";
    o["serial"] = e.info ? e.info->serial_hex : "";
    o["not_after"] = e.info ? format_rfc3339(e.info->not_after) : "";
    o["next_renewal"] = format_rfc3339(e.due);
    o["last_error"] = e.last_error;
    o["failures"] = e.failures;
    out.push_back(std::move(o));
  }
  return json::serialize(out);
}

std::string Manager::prometheus() const {
  std::string out;
  out +=
      "# HELP hearth_certificate_expiry_timestamp_seconds Not-after of each managed "
      "certificate, Unix time.\n";
  out += "# TYPE hearth_certificate_expiry_timestamp_seconds gauge\n";
  std::lock_guard lock(mu_);
  for (const auto& e : entries_) {
    if (!e.active || !e.info) continue;
    out += "hearth_certificate_expiry_timestamp_seconds{name=\"" + e.name + "\"} " +
           std::to_string(unix_seconds(e.info->not_after)) + "\n";
  }
  out += "# HELP hearth_acme_orders_total ACME orders finished, by result.\n";
  out += "# TYPE hearth_acme_orders_total counter\n";
  out += "hearth_acme_orders_total{result=\"success\"} " + std::to_string(orders_ok_) + "\n";
  out += "hearth_acme_orders_total{result=\"failure\"} " + std::to_string(orders_failed_) + "\n";
  return out;
}

}  // namespace hearth::acme
