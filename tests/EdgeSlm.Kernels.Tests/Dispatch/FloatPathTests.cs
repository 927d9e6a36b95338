using EdgeSlm.Kernels.Dispatch;

namespace EdgeSlm.Kernels.Tests.Dispatch;

public sealed class FloatPathTests
{
    [Fact]
    public void Reference_kernel_path_makes_every_float_op_the_reference()
    {
        Assert.Equal(FloatPath.Reference, FloatPaths.For(KernelPath.Reference));
    }

    [Fact]
    public void Every_supported_kernel_path_gets_a_float_path_this_cpu_runs()
    {
        foreach (KernelPath path in KernelPaths.Supported)
        {
            Assert.True(FloatPaths.IsSupported(FloatPaths.For(path)), $"{KernelPaths.Name(path)} -> {FloatPaths.For(path)}");
        }
    }
}
