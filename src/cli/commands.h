// The `dino` subcommands: one file each in src/cli/ (cmd_<name>.c), dispatched
// from main.c.
#ifndef DINO_CLI_COMMANDS_H
#define DINO_CLI_COMMANDS_H

typedef int (*CommandFn)(int argc, char **argv);  // argv[0] is the subcommand name

typedef struct {
    const char *name;
    CommandFn run;
    const char *summary;
} Command;

#define DINO_COMMAND(name) int cmd_##name(int argc, char **argv)
DINO_COMMAND(train);
DINO_COMMAND(features);
DINO_COMMAND(knn);
DINO_COMMAND(linear);
DINO_COMMAND(attention);
DINO_COMMAND(segment_video);
DINO_COMMAND(davis_eval);
DINO_COMMAND(retrieve);
DINO_COMMAND(copy_detect);
DINO_COMMAND(augment);
DINO_COMMAND(plot);
DINO_COMMAND(convert);
DINO_COMMAND(info);
DINO_COMMAND(bench);
DINO_COMMAND(version);

#endif
