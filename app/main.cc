#include "app/cli.h"

int main(int argc, char** argv) {
  return blindfold::app::main(argc, argv);
}
