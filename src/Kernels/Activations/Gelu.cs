using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Dispatch;

namespace EdgeSlm.Kernels.Activations;

/// <summary>
/// Exact (erf) GELU, as BERT defines it: x·Φ(x) = relu(x) − |x|·erfc(|x|/√2)/2, with erfc from Abramowitz and
/// Stegun 7.1.26 (absolute error below 1.5e-7). TensorPrimitives has no erf or GELU. Each vector tier ends with the
/// reference's scalar loop, and the Vector and Vector512 tiers compute the same formula in the same order, so they
/// agree bit for bit on every element both cover with whole vectors; the reference differs from them by its scalar exponential (see <see cref="GeluTolerance"/>).
/// </summary>
public static class Gelu
{
    /// <summary>Largest difference of a vector tier from the reference, relative to max(1, |x|): the two exponentials' error.</summary>
    public const float GeluTolerance = 2e-6f;

    /// <summary>x = GELU(x), in place, on the given tier (the default: the process's kernel path).</summary>
    public static void Apply(Span<float> x, FloatPath? path = null)
    {
        switch (path ?? FloatPaths.Default)
        {
            case FloatPath.Vector512 when Vector512.IsHardwareAccelerated:
                GeluVector512(x);
                break;
            case FloatPath.Vector or FloatPath.Vector512 when Vector.IsHardwareAccelerated:
                GeluVector(x);
                break;
            default:
                GeluReference(x);
                break;
        }
    }

    public static void GeluReference(Span<float> x) => Tail(x, 0);

    /// <summary>
    /// One vector at a time: the iterations are independent, so out-of-order execution already overlaps them, and
    /// with AVX2's 16 registers two or four vectors per iteration spill (docs/kernels.md).
    /// </summary>
    public static void GeluVector(Span<float> x)
    {
        Debug.Assert(Vector.IsHardwareAccelerated);
        Span<Vector<float>> vectors = MemoryMarshal.Cast<float, Vector<float>>(x);
        for (int v = 0; v < vectors.Length; v++)
        {
            vectors[v] = Of(vectors[v]);
        }
        Tail(x, vectors.Length * Vector<float>.Count);
    }

    public static void GeluVector512(Span<float> x)
    {
        Debug.Assert(Vector512.IsHardwareAccelerated);
        Span<Vector512<float>> vectors = MemoryMarshal.Cast<float, Vector512<float>>(x);
        for (int v = 0; v < vectors.Length; v++)
        {
            vectors[v] = Of(vectors[v]);
        }
        Tail(x, vectors.Length * Vector512<float>.Count);
    }

    private static void Tail(Span<float> x, int start)
    {
        for (int i = start; i < x.Length; i++)
        {
            float value = x[i], magnitude = MathF.Abs(value), u = magnitude * InverseSqrt2;
            float t = 1f / (1f + P * u);
            float poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
            x[i] = MathF.Max(value, 0f) - magnitude * poly * MathF.Exp(-u * u) * 0.5f;
        }
    }

    /// <summary>
    /// The backward pass of <see cref="Apply"/> for training: dx = dy · GELU'(x), GELU'(x) = Φ(x) + x·φ(x), with Φ from the
    /// same erfc approximation as the forward and φ exact. Scalar only: per sentence it runs on (tokens × feed-forward)
    /// values once per layer, next to matrix products a thousand times larger.
    /// </summary>
    public static void BackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        if (dy.Length != x.Length || dx.Length != x.Length)
        {
            throw new ArgumentException($"GELU backward needs x, dy and dx of one length (x {x.Length}, dy {dy.Length}, dx {dx.Length}).");
        }
        for (int i = 0; i < x.Length; i++)
        {
            float value = x[i], u = MathF.Abs(value) * InverseSqrt2;
            float t = 1f / (1f + P * u);
            float poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
            float gaussian = MathF.Exp(-u * u);
            float halfErfc = poly * gaussian * 0.5f;
            float cdf = value >= 0 ? 1f - halfErfc : halfErfc;
            dx[i] = dy[i] * (cdf + value * gaussian * InverseSqrt2Pi);
        }
    }

    private const float P = 0.3275911f, A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;
    private const float InverseSqrt2 = 0.70710678f;
    private const float InverseSqrt2Pi = 0.39894228f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Of(Vector<float> value)
    {
        Vector<float> magnitude = Vector.Abs(value);
        Vector<float> u = magnitude * InverseSqrt2;
        Vector<float> t = Vector<float>.One / (Vector<float>.One + u * P);
        Vector<float> poly = t * (new Vector<float>(A1) + t * (new Vector<float>(A2) + t * (new Vector<float>(A3) + t * (new Vector<float>(A4) + t * A5))));
        Vector<float> halfErfc = poly * ExpOfNegative.Of(u * u) * 0.5f;
        return Vector.Max(value, Vector<float>.Zero) - magnitude * halfErfc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Of(Vector512<float> value)
    {
        Vector512<float> magnitude = Vector512.Abs(value);
        Vector512<float> u = magnitude * InverseSqrt2;
        Vector512<float> t = Vector512<float>.One / (Vector512<float>.One + u * P);
        Vector512<float> poly = t * (Vector512.Create(A1) + t * (Vector512.Create(A2) + t * (Vector512.Create(A3) + t * (Vector512.Create(A4) + t * A5))));
        Vector512<float> halfErfc = poly * ExpOfNegative.Of(u * u) * 0.5f;
        return Vector512.Max(value, Vector512<float>.Zero) - magnitude * halfErfc;
    }
}
