using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using EdgeSlm.Kernels.Dispatch;

namespace EdgeSlm.Kernels.Tests.Dispatch;

public class KernelPathTests
{
    /// <summary>Set by .ci/run for each emulated board: the path that board must get.</summary>
    private const string ExpectedPathVariable = "EDGESLM_EXPECTED_KERNEL_PATH";

    [Fact]
    public void Fastest_path_follows_the_cpu_features()
    {
        KernelPath expected = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.Arm64 when Dp.IsSupported => KernelPath.NeonDotProd,
            Architecture.Arm64 => KernelPath.Neon,
            Architecture.X64 when Avx512F.IsSupported && Avx512BW.IsSupported => KernelPath.Avx512,
            Architecture.X64 when AvxVnni.IsSupported => KernelPath.AvxVnni,
            Architecture.X64 when Avx2.IsSupported => KernelPath.Avx2,
            _ => KernelPath.Portable,
        };
        Assert.Equal(expected, KernelPaths.Fastest);
    }

    [Fact]
    public void Board_under_test_gets_its_expected_path()
    {
        string? expected = Environment.GetEnvironmentVariable(ExpectedPathVariable);
        if (string.IsNullOrEmpty(expected))
        {
            // Not on an emulated board: this machine's own CPU decides, as above, and no variable forces a path.
            Assert.Equal(KernelPaths.Fastest, KernelPaths.Resolve(null));
            return;
        }
        Assert.True(KernelPaths.TryParse(expected, out KernelPath path), $"{ExpectedPathVariable}={expected} is no path name");
        Assert.Equal(path, KernelPaths.Fastest);
        Assert.Equal(path, KernelPaths.Default);
    }

    [Fact]
    public void Emulated_boards_run_the_arm_paths_they_should()
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.Arm64)
        {
            Assert.False(KernelPaths.IsSupported(KernelPath.Neon));
            Assert.False(KernelPaths.IsSupported(KernelPath.NeonDotProd));
            return;
        }
        Assert.True(KernelPaths.IsSupported(KernelPath.Neon));
        Assert.Equal(Dp.IsSupported, KernelPaths.IsSupported(KernelPath.NeonDotProd));
        Assert.False(KernelPaths.IsSupported(KernelPath.Avx2));
    }

    [Fact]
    public void Avx512_path_needs_avx512_f_and_bw_and_is_preferred_to_the_256_bit_paths()
    {
        Assert.Equal(Avx2.IsSupported && Avx512F.IsSupported && Avx512BW.IsSupported, KernelPaths.IsSupported(KernelPath.Avx512));
        Assert.True(KernelPaths.TryParse("avx512", out KernelPath path));
        Assert.Equal(KernelPath.Avx512, path);
        Assert.Equal("avx512", KernelPaths.Name(KernelPath.Avx512));
        IReadOnlyList<KernelPath> supported = KernelPaths.Supported;
        if (supported.Contains(KernelPath.Avx512))
        {
            Assert.Equal(KernelPath.Avx512, supported[0]);
        }
    }

    [Fact]
    public void Every_path_name_parses_back_to_its_path()
    {
        foreach (KernelPath path in Enum.GetValues<KernelPath>())
        {
            Assert.True(KernelPaths.TryParse(KernelPaths.Name(path), out KernelPath parsed), KernelPaths.Name(path));
            Assert.Equal(path, parsed);
        }
    }

    [Fact]
    public void Resolve_accepts_every_supported_path_name_and_auto()
    {
        foreach (KernelPath path in KernelPaths.Supported)
        {
            Assert.Equal(path, KernelPaths.Resolve(KernelPaths.Name(path)));
            Assert.Equal(path, KernelPaths.Resolve(" " + KernelPaths.Name(path).ToUpperInvariant() + " "));
        }
        Assert.Equal(KernelPaths.Fastest, KernelPaths.Resolve("auto"));
        Assert.Equal(KernelPaths.Fastest, KernelPaths.Resolve(""));
    }

    [Fact]
    public void Resolve_rejects_unknown_and_unsupported_paths_with_a_clear_message()
    {
        var unknown = Assert.Throws<NotSupportedException>(() => KernelPaths.Resolve("sse9"));
        Assert.Contains("EDGESLM_KERNELS=sse9", unknown.Message);
        Assert.Contains("neon-dotprod", unknown.Message);

        string foreign = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "avx2" : "neon";
        var unsupported = Assert.Throws<NotSupportedException>(() => KernelPaths.Resolve(foreign));
        Assert.Contains("cannot run", unsupported.Message);
    }
}
