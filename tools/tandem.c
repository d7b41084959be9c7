/* The `tandem` command: train, evaluate, inspect and check models. */
#include <stdio.h>
#include <string.h>

#include "optim/dist.h"
#include "tools/cli.h"

static const char usage[] =
    "usage: tandem <command> [options]\n"
    "commands:\n"
    "  train     train a model (default: the seed MLP on Fashion-MNIST)\n"
    "  eval      evaluate saved weights on a test set\n"
    "  sample    generate text from a text model's weights\n"
    "  inspect   print a model's graph, parameters and planned memory; write DOT\n"
    "  check     check gradient and Hessian-vector product against finite differences\n"
    "  ntk       the empirical neural tangent kernel of a model on samples of its data\n"
    "  curvature top eigenvalues of the Hessian, Gauss-Newton matrix or NTK (Lanczos)\n"
    "  ntk-predict  kernel regression and kernel-regime training from the empirical NTK\n"
    "  version   print the version\n"
    "`tandem <command> --help` describes each command's options.\n";

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "train")) return td_cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return td_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return td_cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "check")) return td_cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "sample")) return td_cmd_sample(argc - 1, argv + 1);
    if (!strcmp(cmd, "ntk")) return td_cmd_ntk(argc - 1, argv + 1);
    if (!strcmp(cmd, "curvature")) return td_cmd_curvature(argc - 1, argv + 1);
    if (!strcmp(cmd, "ntk-predict")) return td_cmd_ntk_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("tandem %s (MPI data parallelism: %s)\n", TD_VERSION,
               td_dist_available() ? "yes" : "no");
        return 0;
    }
    fprintf(stderr, "tandem: unknown command '%s'\n%s", cmd, usage);
    return 2;
}
