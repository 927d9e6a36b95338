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
public sealed record QuantTypeTraits(
    QuantType Type,
    string Name,
    int BlockElements,
    int BlockBytes,
    QuantType DotPartner,
    bool IsQuantized)
{
    private static readonly QuantTypeTraits[] Table =
    [
        new(QuantType.F32, "f32", 1, 4, QuantType.F32, false),
        new(QuantType.F16, "f16", 1, 2, QuantType.F32, false),
        new(QuantType.Q4_0, "q4_0", BlockQ4_0.Elements, BlockQ4_0.Bytes, QuantType.Q8_0, true),
        new(QuantType.Q8_0, "q8_0", BlockQ8_0.Elements, BlockQ8_0.Bytes, QuantType.Q8_0, true),
    ];

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
