/* start.c - the start of test programs built to run on the glibc floor (2.31) although
 * built here on a newer glibc (build/tests/floor/, for the Debian 11 container tests).
 *
 * A program's crt1.o calls __libc_start_main, which glibc 2.34 re-versioned: a program
 * linked on 2.34 or newer needs GLIBC_2.34 for that alone. These programs are linked
 * without the C runtime's start files (-nostartfiles) and start here instead, calling
 * the GLIBC_2.2.5 __libc_start_main (pinned by glibc_compat.h, which every floor object
 * includes) the way programs built on old glibc did: with their own constructor and
 * destructor runners, which every glibc since accepts from a "legacy" program. The rest
 * of the program binds to old symbol versions through glibc_compat.h. x86_64 only. */
#include <stddef.h>

#if !defined(__x86_64__)
#error "tests/floor/start.c knows only the x86_64 entry sequence"
#endif

int main(int argc, char **argv, char **envp);
int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv,
                      void (*init)(int, char **, char **), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end);

/* Without crtbegin.o nobody defines the handle atexit() registers against. */
__attribute__((visibility("hidden"))) void *__dso_handle = &__dso_handle;

/* From the linker script: the program's constructors and destructors. */
extern void (*__preinit_array_start[])(int, char **, char **) __attribute__((visibility("hidden")));
extern void (*__preinit_array_end[])(int, char **, char **) __attribute__((visibility("hidden")));
extern void (*__init_array_start[])(int, char **, char **) __attribute__((visibility("hidden")));
extern void (*__init_array_end[])(int, char **, char **) __attribute__((visibility("hidden")));
extern void (*__fini_array_start[])(void) __attribute__((visibility("hidden")));
extern void (*__fini_array_end[])(void) __attribute__((visibility("hidden")));

__attribute__((used)) static void floor_init(int argc, char **argv, char **envp)
{
    for (size_t i = 0; i < (size_t)(__preinit_array_end - __preinit_array_start); i++)
        __preinit_array_start[i](argc, argv, envp);
    for (size_t i = 0; i < (size_t)(__init_array_end - __init_array_start); i++)
        __init_array_start[i](argc, argv, envp);
}

__attribute__((used)) static void floor_fini(void)
{
    for (size_t i = (size_t)(__fini_array_end - __fini_array_start); i-- > 0;)
        __fini_array_start[i]();
}

/* The kernel leaves argc, argv and the environment on the stack, and the dynamic
 * loader its finaliser in %rdx. */
__asm__(".text\n"
        ".globl _start\n"
        ".type _start, @function\n"
        "_start:\n"
        "    xor %ebp, %ebp\n"
        "    mov %rdx, %r9\n"  /* rtld_fini */
        "    pop %rsi\n"       /* argc */
        "    mov %rsp, %rdx\n" /* argv */
        "    and $-16, %rsp\n"
        "    push %rax\n"
        "    push %rsp\n" /* stack_end */
        "    lea floor_init(%rip), %rcx\n"
        "    lea floor_fini(%rip), %r8\n"
        "    lea main(%rip), %rdi\n"
        "    call *__libc_start_main@GOTPCREL(%rip)\n"
        "    hlt\n"
        ".size _start, . - _start\n");
