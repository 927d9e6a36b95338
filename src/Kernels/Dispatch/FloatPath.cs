using System.Numerics;
using System.Runtime.Intrinsics;

namespace EdgeSlm.Kernels.Dispatch;

/// <summary>
/// The tiers of the float kernels (activations, attention, bias adds, training products). Every float op has the
/// same three, named <c>XxxReference</c>, <c>XxxVector</c> and <c>XxxVector512</c>: the <see cref="Vector{T}"/> tier is
/// 128-bit NEON on ARM64 and 256-bit AVX2 on x64, so one body serves both; AVX-512 gets its own.
/// </summary>
public enum FloatPath
{
    /// <summary>Scalar code, one element at a time: the definition.</summary>
    Reference,
    /// <summary><see cref="Vector{T}"/>: NEON on ARM64, AVX2 on x64.</summary>
    Vector,
    /// <summary><see cref="Vector512{T}"/>, where AVX-512 is accelerated.</summary>
    Vector512,
}

public static class FloatPaths
{
    /// <summary>
    /// The float tier that goes with an int8 kernel path, so that one <c>EDGESLM_KERNELS</c> setting chooses the
    /// whole forward pass: <c>reference</c> makes every op the reference.
    /// </summary>
    public static FloatPath For(KernelPath path) => path switch
    {
        KernelPath.Reference => FloatPath.Reference,
        KernelPath.Avx512 when Vector512.IsHardwareAccelerated => FloatPath.Vector512,
        _ when Vector.IsHardwareAccelerated => FloatPath.Vector,
        _ => FloatPath.Reference,
    };

    /// <summary>The float tier of <see cref="KernelPaths.Default"/>.</summary>
    public static FloatPath Default => For(KernelPaths.Default);

    /// <summary>Whether this process can run <paramref name="path"/>.</summary>
    public static bool IsSupported(FloatPath path) => path switch
    {
        FloatPath.Reference => true,
        FloatPath.Vector => Vector.IsHardwareAccelerated,
        FloatPath.Vector512 => Vector512.IsHardwareAccelerated,
        _ => false,
    };
}
