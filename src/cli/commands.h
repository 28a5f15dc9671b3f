// The `dino` subcommands: one file each in src/cli/, dispatched from main.c.
#ifndef DINO_CLI_COMMANDS_H
#define DINO_CLI_COMMANDS_H

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);  // argv[0] is the subcommand name
    const char *summary;
} Command;

int cmd_version(int argc, char **argv);

#endif
