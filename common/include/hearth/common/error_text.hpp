#pragma once
// An exception's message for a user to read. Boost 1.81's system_error::what()
// appends the throw site ("[system:98 at /usr/include/boost/asio/detail/...:161
// in function 'bind']"): that is noise to an operator, so it is cut (issue 13:
// no Boost source locations in user-facing messages).

#include <boost/system/system_error.hpp>
#include <exception>
#include <string>

namespace hearth {

inline std::string error_text(const std::exception& e) {
  std::string what = e.what();
  if (dynamic_cast<const boost::system::system_error*>(&e) != nullptr) {
    auto at = what.rfind(" [");
    if (at != std::string::npos && what.back() == ']') what.resize(at);
  }
  return what;
}

}  // namespace hearth
