using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeSlm.Kernels.Activations;

/// <summary>
/// e^-y for y ≥ 0, in float vectors: e^-y = 2^n · e^r with n = round(-y·log2 e), r = -y − n·ln 2 in
/// [−ln2/2, ln2/2] (ln 2 in two parts, so r is exact to float), e^r by its Taylor polynomial to r^6 (relative error
/// below 2e-7), 2^n put in the exponent bits. y is clamped to 87.3 so that 2^n stays normal: e^-87.3 ≈ 1e-38 in
/// place of a smaller number changes nothing the callers add. .NET's vector Exp computes in double, with more than
/// twice the instructions (docs/kernels.md, "Measurements behind the code").
/// </summary>
public static class ExpOfNegative
{
    private const float Clamp = 87.3f, Log2E = 1.44269504f, Ln2High = 0.693145752f, Ln2Low = 1.42860677e-6f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Of(Vector<float> y)
    {
        Vector<float> x = -Vector.Min(y, new Vector<float>(Clamp));
        Vector<float> n = Vector.Round(x * Log2E);
        Vector<float> r = Vector.FusedMultiplyAdd(n, new Vector<float>(-Ln2High), x);
        r = Vector.FusedMultiplyAdd(n, new Vector<float>(-Ln2Low), r);
        Vector<float> p = Vector.FusedMultiplyAdd(new Vector<float>(1f / 720), r, new Vector<float>(1f / 120));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<float>(1f / 24));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<float>(1f / 6));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<float>(0.5f));
        p = Vector.FusedMultiplyAdd(p, r, Vector<float>.One);
        p = Vector.FusedMultiplyAdd(p, r, Vector<float>.One);
        Vector<float> twoToN = Vector.AsVectorSingle((Vector.ConvertToInt32Native(n) + new Vector<int>(127)) << 23);
        return p * twoToN;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Of(Vector512<float> y)
    {
        Vector512<float> x = -Vector512.Min(y, Vector512.Create(Clamp));
        Vector512<float> n = Vector512.Round(x * Log2E);
        Vector512<float> r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2High), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Low), r);
        Vector512<float> p = Vector512.FusedMultiplyAdd(Vector512.Create(1f / 720), r, Vector512.Create(1f / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        Vector512<float> twoToN = ((Vector512.ConvertToInt32Native(n) + Vector512.Create(127)) << 23).AsSingle();
        return p * twoToN;
    }
}
