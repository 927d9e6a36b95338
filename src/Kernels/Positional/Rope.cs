using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Dispatch;


namespace EdgeSlm.Kernels.Positional;

/// <summary>Which dimensions of a head RoPE rotates together (ggml's rope modes).</summary>
public enum RopeLayout
{
    /// <summary>Adjacent pairs (2i, 2i + 1): ggml's <c>GGML_ROPE_TYPE_NORM</c> (0), llama.cpp's choice for <c>llama</c>.</summary>
    Interleaved = 0,

    /// <summary>Pairs (i, i + d/2) of the two halves: <c>GGML_ROPE_TYPE_NEOX</c> (2), llama.cpp's choice for <c>qwen2</c>.</summary>
    Halves = 2,
}

/// <summary>
/// Rotary position embedding of query and key heads. Pair i of a head at position p turns by the angle
/// θ = p · base^(−2i/d), computed as ggml computes it: θ starts at p and is multiplied by base^(−2/d) (in float)
/// once per pair. The table holds, per position and dimension, the cosine C and the signed sine S, so that in
/// both layouts y[j] = x[j] · C[j] + x[partner(j)] · S[j] (partner: the other member of j's pair), which the
/// vector tier computes with the same roundings as the reference: it is bit-exact.
/// </summary>
public sealed class RopeTable
{
    private readonly float[] _cos; // (positions, headSize)
    private readonly float[] _sin; // (positions, headSize): −sin on a pair's first member, +sin on its second

    /// <param name="layout">Pairing of the dimensions.</param>
    /// <param name="headSize">Dimensions per head, all rotated (llama.cpp's n_rot = head size); even.</param>
    /// <param name="positions">Positions the table covers (the context length).</param>
    /// <param name="frequencyBase">RoPE base (10000, 100000, 1e6 ...).</param>
    public RopeTable(RopeLayout layout, int headSize, int positions, float frequencyBase)
    {
        if (headSize < 2 || headSize % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(headSize), headSize, "RoPE needs an even head size of at least 2.");
        }
        if (positions < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(positions), positions, "RoPE needs at least one position.");
        }
        if (!(frequencyBase > 0) || float.IsInfinity(frequencyBase))
        {
            throw new ArgumentOutOfRangeException(nameof(frequencyBase), frequencyBase, "The RoPE base must be a positive number.");
        }
        Layout = layout;
        HeadSize = headSize;
        Positions = positions;
        _cos = new float[(long)positions * headSize];
        _sin = new float[(long)positions * headSize];
        int half = headSize / 2;
        float thetaScale = MathF.Pow(frequencyBase, -2f / headSize);
        for (int p = 0; p < positions; p++)
        {
            float theta = p;
            Span<float> cos = _cos.AsSpan(p * headSize, headSize);
            Span<float> sin = _sin.AsSpan(p * headSize, headSize);
            for (int i = 0; i < half; i++)
            {
                float c = MathF.Cos(theta);
                float s = MathF.Sin(theta);
                (int first, int second) = layout == RopeLayout.Interleaved ? (2 * i, 2 * i + 1) : (i, i + half);
                cos[first] = c;
                cos[second] = c;
                sin[first] = -s;
                sin[second] = s;
                theta *= thetaScale;
            }
        }
    }

    public RopeLayout Layout { get; }
    public int HeadSize { get; }
    public int Positions { get; }

    /// <summary>Rotates every head of <paramref name="heads"/> ((count, headSize), heads side by side) to <paramref name="position"/>.</summary>
    public void Apply(Span<float> heads, int position, FloatPath? path = null)
    {
        Validate(heads, position);
        if ((path ?? FloatPaths.Default) is not FloatPath.Reference && Vector128.IsHardwareAccelerated)
        {
            ApplyVector(heads, position);
        }
        else
        {
            ApplyReference(heads, position);
        }
    }

    public void ApplyReference(Span<float> heads, int position)
    {
        Validate(heads, position);
        int d = HeadSize;
        ReadOnlySpan<float> cos = _cos.AsSpan(position * d, d);
        ReadOnlySpan<float> sin = _sin.AsSpan(position * d, d);
        int half = d / 2;
        for (int h = 0; h < heads.Length; h += d)
        {
            Span<float> x = heads.Slice(h, d);
            for (int i = 0; i < half; i++)
            {
                (int a, int b) = Layout == RopeLayout.Interleaved ? (2 * i, 2 * i + 1) : (i, i + half);
                float x0 = x[a];
                float x1 = x[b];
                x[a] = x0 * cos[a] + x1 * sin[a];
                x[b] = x1 * cos[b] + x0 * sin[b];
            }
        }
    }

    public unsafe void ApplyVector(Span<float> heads, int position)
    {
        Validate(heads, position);
        int d = HeadSize;
        int half = d / 2;
        fixed (float* cosRow = &_cos[position * d])
        fixed (float* sinRow = &_sin[position * d])
        fixed (float* all = heads)
        {
            for (float* x = all; x < all + heads.Length; x += d)
            {
                if (Layout == RopeLayout.Interleaved)
                {
                    int j = 0;
                    for (; j + 4 <= d; j += 4)
                    {
                        Vector128<float> v = Vector128.Load(x + j);
                        Vector128<float> swapped = Vector128.Shuffle(v, Vector128.Create(1, 0, 3, 2));
                        Vector128<float> y = v * Vector128.Load(cosRow + j) + swapped * Vector128.Load(sinRow + j);
                        y.Store(x + j);
                    }
                    for (; j < d; j += 2)
                    {
                        float x0 = x[j], x1 = x[j + 1];
                        x[j] = x0 * cosRow[j] + x1 * sinRow[j];
                        x[j + 1] = x1 * cosRow[j + 1] + x0 * sinRow[j + 1];
                    }
                }
                else
                {
                    int i = 0;
                    for (; i + 4 <= half; i += 4)
                    {
                        Vector128<float> a = Vector128.Load(x + i);
                        Vector128<float> b = Vector128.Load(x + half + i);
                        Vector128<float> ya = a * Vector128.Load(cosRow + i) + b * Vector128.Load(sinRow + i);
                        Vector128<float> yb = b * Vector128.Load(cosRow + half + i) + a * Vector128.Load(sinRow + half + i);
                        ya.Store(x + i);
                        yb.Store(x + half + i);
                    }
                    for (; i < half; i++)
                    {
                        float x0 = x[i], x1 = x[half + i];
                        x[i] = x0 * cosRow[i] + x1 * sinRow[i];
                        x[half + i] = x1 * cosRow[half + i] + x0 * sinRow[half + i];
                    }
                }
            }
        }
    }

    private void Validate(Span<float> heads, int position)
    {
        if ((uint)position >= (uint)Positions)
        {
            throw new ArgumentOutOfRangeException(nameof(position), position, $"The RoPE table covers positions 0 to {Positions - 1}.");
        }
        if (heads.Length % HeadSize != 0)
        {
            throw new ArgumentException($"{heads.Length} values are not whole heads of {HeadSize}.", nameof(heads));
        }
    }
}
