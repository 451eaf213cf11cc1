#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charlm.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: charlm [--model gpt|lstm] [--steps N] [--batch B] [--lr X] [--threads N]\n"
            "              [--seed S] [--data DIR] [--save FILE] [--load FILE]\n"
            "              [--eval-every N] [--val-windows N] [--sample N] [--temperature X]\n"
            "              [--prompt TEXT] [--precision fp32|bf16]\n"
            "  --model        gpt (4 blocks, 128 wide, T 128; AdamW lr 3e-3) or lstm (2 layers\n"
            "                 of 256, T 64; Adam lr 2e-3); default gpt\n"
            "  --steps        training steps (default 2000; 0 only evaluates and samples)\n"
            "  --batch        windows per step (default 32)\n"
            "  --data         the fortunes directory (default /usr/share/games/fortunes)\n"
            "  --save/--load  the model's weights as safetensors (PyTorch's state_dict names)\n"
            "  --eval-every   validation loss every N steps (default 500; 0: at the end only)\n"
            "  --val-windows  evaluate the first N validation windows (default 0: all)\n"
            "  --sample       bytes generated at the end (default 200) at --temperature\n"
            "                 (default 0.8; 0 picks the most likely byte)\n"
            "  --precision    bf16 rounds the operands of the matrix products to bfloat16\n"
            "                 (float32 accumulation, float32 weights and optimizer state)\n"
            "The last line printed is the validation loss, `val loss: X.XXXX`.\n");
}

static bool known_flag(const char *a)
{
    static const char *const FLAGS[] = {"--model", "--steps", "--batch", "--lr", "--threads",
                                        "--seed", "--data", "--save", "--load", "--eval-every",
                                        "--val-windows", "--sample", "--temperature", "--prompt",
                                        "--precision"};
    for (size_t i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++)
        if (strcmp(FLAGS[i], a) == 0) return true;
    return false;
}

int options_parse(int argc, char **argv, options *o)
{
    *o = (options){.train = {.model = "gpt", .steps = 2000, .batch = 32, .lr = -1, .seed = 0},
                   .temperature = 0.8, .eval_every = 500, .sample_bytes = 200,
                   .data = "/usr/share/games/fortunes", .prompt = "\n"};
    charlm_train_options *t = &o->train;
    /* Every flag but --help takes a value: flags sit at odd positions. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout), 1;
        if (!known_flag(a)) return fprintf(stderr, "charlm: unknown option %s\n", a), usage(stderr), 2;
        if (!v) return fprintf(stderr, "charlm: %s needs a value\n", a), usage(stderr), 2;
        if (strcmp(a, "--model") == 0) t->model = v;
        else if (strcmp(a, "--steps") == 0) t->steps = atoll(v);
        else if (strcmp(a, "--batch") == 0) t->batch = atoll(v);
        else if (strcmp(a, "--lr") == 0) t->lr = atof(v);
        else if (strcmp(a, "--threads") == 0) o->threads = atoi(v);
        else if (strcmp(a, "--seed") == 0) t->seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--data") == 0) o->data = v;
        else if (strcmp(a, "--save") == 0) o->save = v;
        else if (strcmp(a, "--load") == 0) t->load = v;
        else if (strcmp(a, "--eval-every") == 0) o->eval_every = atoll(v);
        else if (strcmp(a, "--val-windows") == 0) t->val_windows = atoll(v);
        else if (strcmp(a, "--sample") == 0) o->sample_bytes = atoll(v);
        else if (strcmp(a, "--temperature") == 0) o->temperature = atof(v);
        else if (strcmp(a, "--precision") == 0) {
            if (strcmp(v, "bf16") != 0 && strcmp(v, "fp32") != 0)
                return fprintf(stderr, "charlm: --precision is fp32 or bf16, not %s\n", v), 2;
            t->bf16 = strcmp(v, "bf16") == 0;
        }
        else o->prompt = v;   /* --prompt */
    }
    bool gpt = strcmp(t->model, "gpt") == 0;
    if (!gpt && strcmp(t->model, "lstm") != 0)
        return fprintf(stderr, "charlm: --model must be gpt or lstm, not %s\n", t->model), 2;
    if (t->lr < 0) t->lr = gpt ? 3e-3 : 2e-3;
    if (t->steps < 0 || t->batch < 1 || !(t->lr > 0) || o->threads < 0 || o->eval_every < 0 ||
        t->val_windows < 0 ||
        o->sample_bytes < 0 || !(o->temperature >= 0) || !o->prompt[0])
        return fprintf(stderr, "charlm: --steps, --eval-every, --val-windows, --sample must be >= 0, --batch >= 1, "
                       "--lr > 0, --temperature >= 0 and --prompt not empty\n"), 2;
    return 0;
}
