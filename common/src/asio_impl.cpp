// The single translation unit that compiles Asio, Asio SSL and Beast
// (BOOST_*_SEPARATE_COMPILATION): every other file only sees declarations,
// which roughly halves build time on a 2-core machine.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
