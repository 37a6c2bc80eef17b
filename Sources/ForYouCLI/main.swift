import ForYou
import Platform

// OpenBLAS picks its kernels when it loads; correct a wasteful choice before any BLAS work.
let kernelReport = KernelSelection.ensure()
CLIContext.kernelReport = kernelReport
Interrupts.install()
ForYouCommand.main()
