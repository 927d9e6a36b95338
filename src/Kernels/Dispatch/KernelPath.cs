using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using System.Runtime.Intrinsics;

namespace EdgeSlm.Kernels.Dispatch;

/// <summary>The implementations of the int8 kernels, from the plain reference to the widest SIMD.</summary>
public enum KernelPath
{
    /// <summary>Scalar code, the definition every other path is tested against.</summary>
    Reference,
    /// <summary><see cref="Vector128"/> only: runs anywhere .NET runs.</summary>
    Portable,
    /// <summary>x64 with AVX2 (maddubs / madd).</summary>
    Avx2,
    /// <summary>x64 with AVX-VNNI (vpdpbusd on 256-bit vectors).</summary>
    AvxVnni,
    /// <summary>x64 with AVX-512 F and BW (maddubs / madd on 512-bit vectors, 16 rows per tile).</summary>
    Avx512,
    /// <summary>ARMv8.0 NEON without the dot-product extension (Cortex-A53, A72: Raspberry Pi 3 and 4): widening multiplies.</summary>
    Neon,
    /// <summary>ARMv8.2+ NEON with SDOT (Cortex-A55, A76: Raspberry Pi 5).</summary>
    NeonDotProd,
}

/// <summary>Which kernel path this process uses, chosen once, and what the CPU offers.</summary>
public static class KernelPaths
{
    /// <summary>The environment variable that forces a path (<c>reference|portable|avx2|avx-vnni|avx512|neon|neon-dotprod</c>).</summary>
    public const string EnvironmentVariable = "EDGESLM_KERNELS";

    // Fastest first: the first supported one is the default.
    private static readonly KernelPath[] Preference =
        [KernelPath.NeonDotProd, KernelPath.Neon, KernelPath.Avx512, KernelPath.AvxVnni, KernelPath.Avx2, KernelPath.Portable, KernelPath.Reference];

    private static readonly Lazy<KernelPath> Selected = new(() => Resolve(Environment.GetEnvironmentVariable(EnvironmentVariable)));

    /// <summary>The path in use: <see cref="EnvironmentVariable"/> if set, else the fastest the CPU supports.</summary>
    /// <exception cref="NotSupportedException">The variable names an unknown path or one this CPU lacks.</exception>
    public static KernelPath Default => Selected.Value;

    /// <summary>The fastest path this CPU supports.</summary>
    public static KernelPath Fastest => Preference.First(IsSupported);

    public static IReadOnlyList<KernelPath> Supported => Preference.Where(IsSupported).ToArray();

    public static bool IsSupported(KernelPath path) => path switch
    {
        KernelPath.Reference or KernelPath.Portable => true,
        KernelPath.Avx2 => Avx2.IsSupported,
        KernelPath.AvxVnni => Avx2.IsSupported && AvxVnni.IsSupported,
        KernelPath.Avx512 => Avx2.IsSupported && Avx512F.IsSupported && Avx512BW.IsSupported,
        KernelPath.Neon => AdvSimd.Arm64.IsSupported,
        KernelPath.NeonDotProd => AdvSimd.Arm64.IsSupported && Dp.IsSupported,
        _ => false,
    };

    /// <summary>The path a request names (null or empty: the fastest supported).</summary>
    public static KernelPath Resolve(string? requested)
    {
        if (string.IsNullOrWhiteSpace(requested) || requested.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            return Fastest;
        }
        if (!TryParse(requested.Trim(), out KernelPath path))
        {
            throw new NotSupportedException(
                $"{EnvironmentVariable}={requested} names no kernel path (known: auto, {string.Join(", ", Enum.GetValues<KernelPath>().Select(Name))}).");
        }
        if (!IsSupported(path))
        {
            throw new NotSupportedException(
                $"{EnvironmentVariable}={requested}: this CPU cannot run the {Name(path)} path (it supports: {string.Join(", ", Supported.Select(Name))}).");
        }
        return path;
    }

    public static string Name(KernelPath path) => path switch
    {
        KernelPath.Reference => "reference",
        KernelPath.Portable => "portable",
        KernelPath.Avx2 => "avx2",
        KernelPath.AvxVnni => "avx-vnni",
        KernelPath.Avx512 => "avx512",
        KernelPath.Neon => "neon",
        KernelPath.NeonDotProd => "neon-dotprod",
        _ => path.ToString(),
    };

    public static bool TryParse(string name, out KernelPath path)
    {
        foreach (KernelPath candidate in Enum.GetValues<KernelPath>())
        {
            if (string.Equals(Name(candidate), name, StringComparison.OrdinalIgnoreCase))
            {
                path = candidate;
                return true;
            }
        }
        path = default;
        return false;
    }

    /// <summary>The instruction-set extensions .NET reports for this CPU, as <c>name=true|false</c> pairs.</summary>
    public static IReadOnlyList<(string Name, bool Supported)> CpuFeatures() => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.Arm64 =>
        [
            ("AdvSimd", AdvSimd.IsSupported),
            ("AdvSimd.Arm64", AdvSimd.Arm64.IsSupported),
            ("Dp (SDOT)", Dp.IsSupported),
            ("Rdm", Rdm.IsSupported),
            ("Crc32", Crc32.IsSupported),
            ("Aes", System.Runtime.Intrinsics.Arm.Aes.IsSupported),
        ],
        Architecture.X64 or Architecture.X86 =>
        [
            ("Sse4.2", Sse42.IsSupported),
            ("Avx", Avx.IsSupported),
            ("Avx2", Avx2.IsSupported),
            ("Fma", Fma.IsSupported),
            ("AvxVnni", AvxVnni.IsSupported),
            ("Avx512F", Avx512F.IsSupported),
            ("Avx512BW", Avx512BW.IsSupported),
        ],
        _ => [],
    };

    public static string DescribeVectors() =>
        $"Vector128 accelerated={Vector128.IsHardwareAccelerated}, Vector256 accelerated={Vector256.IsHardwareAccelerated}, Vector512 accelerated={Vector512.IsHardwareAccelerated}";
}
