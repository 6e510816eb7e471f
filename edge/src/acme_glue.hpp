#pragma once
// Issue 12: the edge's side of ACME. Owns the acme::Manager (on the control
// context), turns its certificates into SNI contexts swapped into EdgeShared, and
// answers http-01 on the plain listener and /status, /metrics additions on admin.

#include <boost/beast/http.hpp>
#include <memory>
#include <string>
#include <vector>

#include "hearth/acme/manager.hpp"
#include "shared.hpp"

namespace hearth::edge {

class AcmeService {
 public:
  // Creates, starts or reconfigures the service after the config in `shared` was set
  // (start-up) or is about to change to `cfg` (SIGHUP): new hostnames are ordered.
  static void apply(std::unique_ptr<AcmeService>& self, asio::io_context& control,
                    const std::shared_ptr<EdgeShared>& shared, const config::EdgeConfig& cfg);
  ~AcmeService();

 private:
  AcmeService(asio::io_context& control, std::shared_ptr<EdgeShared> shared,
              const config::AcmeConfig& cfg);
  void install(const std::vector<acme::ManagedCert>& certs);
  std::vector<std::string> wanted_names(const config::EdgeConfig& cfg) const;

  std::shared_ptr<EdgeShared> shared_;
  std::shared_ptr<acme::ChallengeBoard> board_;
  std::shared_ptr<acme::Manager> manager_;
};

// http-01 (served before the redirect): 200 with the key authorization, else 404.
boost::beast::http::response<boost::beast::http::string_body> acme_http01_reply(
    const EdgeShared& shared,
    const boost::beast::http::request<boost::beast::http::empty_body>& req);

// Appends the ACME part of /metrics, or adds "certificates" to the /status object.
void acme_admin(const EdgeShared& shared, std::string_view path, std::string& body);

}  // namespace hearth::edge
