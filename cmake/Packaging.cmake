# Install rules and the Debian package (issue 13: "Install and package").
#
#   cmake --install build                 # /usr/bin, /lib/systemd/system, /etc/hearth, /usr/share/doc/hearth
#   cmake --install build --prefix /opt/x # binaries and docs elsewhere (units and /etc stay absolute)
#   (cd build && cpack -G DEB)            # build/hearth_<version>_<arch>.deb
#
# The .deb ships /etc/hearth/*.toml.example as conffiles (an edited example is
# never overwritten; the real edge.toml / origin.toml are the user's and are
# not in the package at all); its postinst creates the `hearth` system user and
# /var/lib/hearth, and purge removes /var/lib/hearth.

if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install prefix" FORCE)
endif()
include(GNUInstallDirs)

install(TARGETS hearth-edge hearth-origin RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES systemd/hearth-edge.service systemd/hearth-origin.service
        DESTINATION /lib/systemd/system)
install(FILES packaging/edge.toml.example packaging/origin.toml.example DESTINATION /etc/hearth)
install(FILES README.md docs/design.md docs/protocol.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES packaging/deb/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Debian wants the changelog gzip -9n'd (no name or time stamp: reproducible).
set(HEARTH_CHANGELOG_GZ ${CMAKE_BINARY_DIR}/packaging/changelog.gz)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/packaging/deb/changelog)
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/packaging)
execute_process(COMMAND gzip -9n -c ${CMAKE_SOURCE_DIR}/packaging/deb/changelog
                OUTPUT_FILE ${HEARTH_CHANGELOG_GZ} RESULT_VARIABLE gzip_result)
if(NOT gzip_result EQUAL 0)
  message(FATAL_ERROR "gzip of packaging/deb/changelog failed")
endif()
install(FILES ${HEARTH_CHANGELOG_GZ} DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME hearth)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "hearth team <hearth@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "reverse proxy for home services behind NAT, through a VPS")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "hearth-edge runs on a VPS: it terminates HTTPS and WSS for your hostnames and\n\
forwards each request or WebSocket over a TLS tunnel. hearth-origin runs at\n\
home next to your services: it dials out to the edge, so CGNAT and closed\n\
routers do not matter, and connects each stream to a local service.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/deb/conffiles ${CMAKE_SOURCE_DIR}/packaging/deb/postinst
    ${CMAKE_SOURCE_DIR}/packaging/deb/prerm ${CMAKE_SOURCE_DIR}/packaging/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
# Absolute destinations (/etc, /lib/systemd) go into the package tree, not the host.
set(CPACK_SET_DESTDIR ON)
# Always /usr in the package, whatever prefix this build dir was configured with.
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_CMAKE_PROJECTS "${CMAKE_BINARY_DIR};hearth;ALL;/")
include(CPack)
