"""flowc.codegen.llvm: the CPU backend, LLVM IR through llvmlite."""
