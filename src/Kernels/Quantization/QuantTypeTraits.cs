using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.Kernels.Quantization;

/// <summary>
/// What every part of EdgeSlm needs to know about a tensor type, in one table (as ggml's <c>type_traits</c>):
/// dispatch goes through <see cref="QuantTypeTraits.Of"/> instead of switches spread over the code base.
/// </summary>
/// <param name="Type">The ggml type id.</param>
/// <param name="Name">ggml's name for the type (<c>q4_0</c>, <c>q8_0</c>, <c>f16</c>, <c>f32</c>).</param>
/// <param name="BlockElements">Elements per block (1 for plain float types).</param>
/// <param name="BlockBytes">Bytes per block.</param>
/// <param name="DotPartner">The type the activations are quantized to for this type's dot product; <see cref="QuantType.F32"/> where the dot product is done in float.</param>
/// <param name="IsQuantized">Whether the type is a block quantization that the int8 kernels multiply.</param>
/// <param name="LoadAs">The type a model loader turns a matrix of this type into: the type itself for the four the
/// kernels multiply; for the storage-only types the native type that holds them with the least added error
/// (<see cref="Conversion.LoadConversion"/>). <see cref="DotPartner"/> is meaningless for storage-only types.</param>
public sealed record QuantTypeTraits(
    QuantType Type,
    string Name,
    int BlockElements,
    int BlockBytes,
    QuantType DotPartner,
    bool IsQuantized,
    QuantType LoadAs)
{
    // Storage-only types: every 4-, 5- and 6-bit type goes to q8_0 (its rounding error, at most 1/254 of a
    // block's largest magnitude, is far below theirs; q4_0 would add error of the size of q4_k's own); bf16 goes to
    // f32, where it is exact (f16 has 3 more mantissa bits but 3 fewer exponent bits: small and large bf16 values
    // would round or overflow).
    private static readonly QuantTypeTraits[] Table =
    [
        new(QuantType.F32, "f32", 1, 4, QuantType.F32, false, QuantType.F32),
        new(QuantType.F16, "f16", 1, 2, QuantType.F32, false, QuantType.F16),
        new(QuantType.Q4_0, "q4_0", BlockQ4_0.Elements, BlockQ4_0.Bytes, QuantType.Q8_0, true, QuantType.Q4_0),
        new(QuantType.Q8_0, "q8_0", BlockQ8_0.Elements, BlockQ8_0.Bytes, QuantType.Q8_0, true, QuantType.Q8_0),
        new(QuantType.Q5_0, "q5_0", BlockQ5_0.Elements, BlockQ5_0.Bytes, QuantType.Q8_0, false, QuantType.Q8_0),
        new(QuantType.Q5_1, "q5_1", BlockQ5_1.Elements, BlockQ5_1.Bytes, QuantType.Q8_0, false, QuantType.Q8_0),
        new(QuantType.Q4_K, "q4_k", BlockQ4_K.Elements, BlockQ4_K.Bytes, QuantType.Q8_0, false, QuantType.Q8_0),
        new(QuantType.Q5_K, "q5_k", BlockQ5_K.Elements, BlockQ5_K.Bytes, QuantType.Q8_0, false, QuantType.Q8_0),
        new(QuantType.Q6_K, "q6_k", BlockQ6_K.Elements, BlockQ6_K.Bytes, QuantType.Q8_0, false, QuantType.Q8_0),
        new(QuantType.BF16, "bf16", 1, 2, QuantType.F32, false, QuantType.F32),
    ];

    /// <summary>Whether the kernels multiply this type as it is stored (no conversion at load).</summary>
    public bool IsNative => LoadAs == Type;

    public static IReadOnlyList<QuantTypeTraits> All => Table;

    public static QuantTypeTraits Of(QuantType type) =>
        TryGet(type, out QuantTypeTraits? traits)
            ? traits
            : throw new NotSupportedException($"Tensor type {(int)type} is not supported (supported: {string.Join(", ", Table.Select(t => t.Name))}).");

    public static bool TryGet(QuantType type, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out QuantTypeTraits? traits)
    {
        foreach (QuantTypeTraits candidate in Table)
        {
            if (candidate.Type == type)
            {
                traits = candidate;
                return true;
            }
        }
        traits = null;
        return false;
    }

    public static QuantTypeTraits Parse(string name) =>
        Table.FirstOrDefault(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new FormatException($"Unknown tensor type '{name}' (known: {string.Join(", ", Table.Select(t => t.Name))}).");

    /// <summary>Bytes taken by a row of <paramref name="elements"/> elements; the count must be a whole number of blocks.</summary>
    public long RowBytes(long elements)
    {
        if (elements % BlockElements != 0)
        {
            throw new ArgumentException($"A {Name} row needs a multiple of {BlockElements} elements, not {elements}.", nameof(elements));
        }
        return elements / BlockElements * BlockBytes;
    }

    /// <summary>Dequantizes a row of this type to floats.</summary>
    public void Dequantize(ReadOnlySpan<byte> source, Span<float> destination) =>
        ReferenceQuantizer.Dequantize(Type, source, destination);

    /// <summary>Quantizes a row of floats to this type with ggml's reference rounding (deterministic model files).</summary>
    public void Quantize(ReadOnlySpan<float> source, Span<byte> destination) =>
        ReferenceQuantizer.Quantize(Type, source, destination);
}
