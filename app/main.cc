#include "app/cli.h"
#include "core/memory.h"

int main(int argc, char** argv) {
  blindfold::tune_allocator();
  return blindfold::app::main(argc, argv);
}
