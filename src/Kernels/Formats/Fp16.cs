using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeSlm.Kernels.Formats;

/// <summary>
/// fp16 to fp32 for block scales inside kernels. <c>(float)Half</c> is a call into a software routine in .NET 10,
/// too slow for an inner loop; shifting the 15 non-sign bits into a float and multiplying by 2^112 is exact for
/// every finite half (normals and subnormals alike). Infinities and NaNs come out finite: the model loader
/// rejects non-finite scales, so kernels never see them.
/// </summary>
internal static class Fp16
{
    private const float ExponentRebias = 5.192296858534828e33f; // 2^112 = 2^(127 - 15)

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort bits)
    {
        float magnitude = BitConverter.Int32BitsToSingle((bits & 0x7FFF) << 13) * ExponentRebias;
        return BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(magnitude) | ((bits & 0x8000) << 16));
    }

    /// <summary>Four halves, each held in the low 16 bits of a lane, to four floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ToSingle(Vector128<uint> bits)
    {
        Vector128<float> magnitude = ((bits & Vector128.Create(0x7FFFu)) << 13).AsSingle() * Vector128.Create(ExponentRebias);
        return (magnitude.AsUInt32() | ((bits & Vector128.Create(0x8000u)) << 16)).AsSingle();
    }
}
