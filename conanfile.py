import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load


class IngestConan(ConanFile):
    name = "ingest"
    description = "Load-leveled, idempotent ingestion: accept fast, process slow"
    license = "Apache-2.0"
    topics = ("queue", "idempotency", "load-leveling", "sqlite", "nats", "sqs", "asio")
    package_type = "static-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {
        "fPIC": [True, False],
        "with_sqlite": [True, False],  # ingest::sqlite: the embedded queue, the idempotency store
        "with_nats": [True, False],    # ingest::nats: the NATS JetStream backend (nats.c)
        "with_http": [True, False],    # ingest::http: the Beast HTTP(S) server for the accept path
        "with_aws": [True, False],     # ingest::aws: SigV4, presigned URLs, an S3 bucket client (Beast, OpenSSL)
        "with_sqs": [True, False],     # ingest::sqs: the SQS backend (needs with_aws)
        "with_postgres": [True, False],  # ingest::postgres: the PostgreSQL sink and idempotency store (libpq)
        "with_testing": [True, False],  # ingest::testing: the queue conformance suite (header-only, doctest)
    }
    default_options = {"fPIC": True, "with_sqlite": True, "with_nats": True, "with_http": True, "with_aws": True,
                       "with_sqs": True,
                       "with_postgres": False, "with_testing": False}
    exports_sources = "CMakeLists.txt", "LICENSE", "cmake/*", "include/*", "src/*"

    def set_version(self):
        text = load(self, os.path.join(self.recipe_folder, "include", "ingest", "version.hpp"))
        parts = [re.search(rf"#define INGEST_VERSION_{p} (\d+)", text).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
        self.version = ".".join(parts)

    def config_options(self):
        if self.settings.os == "Windows":
            del self.options.fPIC

    def validate(self):
        if self.options.with_sqs and not self.options.with_aws:
            raise ConanInvalidConfiguration("with_sqs needs with_aws (its SigV4 signing and HTTP client)")

    def layout(self):
        cmake_layout(self)

    def requirements(self):
        # Boost (Asio, System; Beast and JSON for http) appears in public headers.
        self.requires("boost/1.81.0", transitive_headers=True)
        self.requires("fmt/10.2.1")
        self.requires("openssl/[>=3 <4]")
        if self.options.with_sqlite:
            self.requires("sqlite3/[>=3.40 <4]")
        if self.options.with_nats:
            self.requires("cnats/[>=3.4 <4]")
        if self.options.with_postgres:
            self.requires("libpq/[>=15 <18]")
        if self.options.with_testing:
            self.requires("doctest/[>=2.4 <3]", transitive_headers=True)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["INGEST_WITH_SQLITE"] = bool(self.options.with_sqlite)
        tc.cache_variables["INGEST_WITH_NATS"] = bool(self.options.with_nats)
        tc.cache_variables["INGEST_WITH_HTTP"] = bool(self.options.with_http)
        tc.cache_variables["INGEST_WITH_AWS"] = bool(self.options.with_aws)
        tc.cache_variables["INGEST_WITH_SQS"] = bool(self.options.with_sqs)
        tc.cache_variables["INGEST_WITH_POSTGRES"] = bool(self.options.with_postgres)
        tc.cache_variables["INGEST_WITH_TESTING"] = bool(self.options.with_testing)
        tc.cache_variables["INGEST_CNATS_CONFIG"] = True  # the cnats package's own CMake config
        tc.cache_variables["INGEST_BUILD_TESTS"] = False
        tc.cache_variables["INGEST_BUILD_EXAMPLES"] = False
        tc.cache_variables["INGEST_BUILD_BENCHMARKS"] = False
        tc.generate()
        CMakeDeps(self).generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        CMake(self).install()

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "ingest")
        core = self.cpp_info.components["core"]
        core.set_property("cmake_target_name", "ingest::core")
        core.libs = ["ingest_core"]
        core.requires = ["boost::headers", "fmt::fmt", "openssl::crypto"]
        core.defines = ["BOOST_ASIO_NO_DEPRECATED"]
        if self.settings.os in ("Linux", "FreeBSD"):
            core.system_libs = ["pthread"]
        if self.options.with_sqlite:
            c = self.cpp_info.components["sqlite"]
            c.set_property("cmake_target_name", "ingest::sqlite")
            c.libs = ["ingest_sqlite"]
            c.requires = ["core", "sqlite3::sqlite3", "fmt::fmt"]
        if self.options.with_nats:
            c = self.cpp_info.components["nats"]
            c.set_property("cmake_target_name", "ingest::nats")
            c.libs = ["ingest_nats"]
            c.requires = ["core", "cnats::cnats"]
        if self.options.with_http:
            c = self.cpp_info.components["http"]
            c.set_property("cmake_target_name", "ingest::http")
            c.libs = ["ingest_http"]
            c.requires = ["core", "boost::json", "openssl::ssl", "openssl::crypto"]
        if self.options.with_aws:
            c = self.cpp_info.components["aws"]
            c.set_property("cmake_target_name", "ingest::aws")
            c.libs = ["ingest_aws"]
            c.requires = ["core", "openssl::ssl", "openssl::crypto"]
        if self.options.with_sqs:
            c = self.cpp_info.components["sqs"]
            c.set_property("cmake_target_name", "ingest::sqs")
            c.libs = ["ingest_sqs"]
            c.requires = ["core", "aws", "boost::json", "openssl::ssl", "openssl::crypto"]
        if self.options.with_postgres:
            c = self.cpp_info.components["postgres"]
            c.set_property("cmake_target_name", "ingest::postgres")
            c.libs = ["ingest_postgres"]
            c.requires = ["core", "libpq::libpq", "fmt::fmt"]
        if self.options.with_testing:
            c = self.cpp_info.components["testing"]
            c.set_property("cmake_target_name", "ingest::testing")
            c.requires = ["core", "doctest::doctest"]
