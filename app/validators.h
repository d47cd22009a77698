// CLI11 validators shared by the subcommands of app/ (cli.cc, party.cc), so
// an option parsed in two places is checked the same way in both.
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <exception>
#include <string>

namespace blindfold::app {

/// --input-bound: a positive finite number.
inline CLI::Validator positive_finite() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        try {
          std::size_t used = 0;
          const double d = std::stod(v, &used);
          if (used == v.size() && std::isfinite(d) && d > 0) return "";
        } catch (const std::exception&) {
        }
        return "must be a positive finite number, is '" + v + "'";
      },
      "POSITIVE");
}

}  // namespace blindfold::app
