// The `blindfold` command line: inspect, run, eval, bench, demo. Errors from
// the library are turned here into one clear line on stderr and an exit code
// per error category (core/error.h).
#pragma once

namespace blindfold::app {

int main(int argc, char** argv);

}  // namespace blindfold::app
