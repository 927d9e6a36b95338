using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Llama;

namespace EdgeSlm.Testing;

/// <summary>
/// A tiny llama file whose next token is known: every layer's output projections are zero, so the last position's
/// state is its own token's embedding, and the embeddings and output rows of a chain of tokens are set so that
/// each token of the chain predicts the next with a logit of about 80 against about 0 for the rest of the vocabulary.
/// A test can so make one continuation (an intent's name) far more likely than any other without trained weights.
/// </summary>
public static class ChainDecoder
{
    /// <summary>Writes (or reuses) the file: <paramref name="chain"/>[i] predicts <paramref name="chain"/>[i + 1]; ids must be distinct but for the first and last.</summary>
    public static string Cached(IReadOnlyList<int> chain, string? chatTemplate = null)
    {
        DecoderShape shape = DecoderShape.TinyLlama(tied: false);
        if (chain.Count - 1 > shape.Hidden)
        {
            throw new ArgumentException($"a chain of at most {shape.Hidden + 1} tokens", nameof(chain));
        }
        string name = $"v{SyntheticDecoder.GeneratorVersion}-chain-{string.Join('-', chain)}{(chatTemplate is null ? "" : "-chat" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(chatTemplate)))[..8])}.gguf";
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-tests", name);
        int dim = shape.Hidden;
        lock (typeof(SyntheticDecoder))
        {
            return SyntheticDecoder.Write(path, shape, QuantType.F32, seed: 7, (tensor, values) =>
            {
                if (tensor.EndsWith(LlamaGguf.AttentionOutput, StringComparison.Ordinal) || tensor.EndsWith(LlamaGguf.Down, StringComparison.Ordinal))
                {
                    Array.Clear(values); // the layers add nothing to the residual stream
                }
                else if (tensor == LlamaGguf.OutputNorm)
                {
                    Array.Fill(values, 1f);
                }
                else if (tensor == LlamaGguf.TokenEmbedding)
                {
                    for (int i = 0; i + 1 < chain.Count; i++)
                    {
                        Span<float> row = values.AsSpan(chain[i] * dim, dim);
                        row.Clear();
                        row[i] = 1f;
                    }
                }
                else if (tensor == LlamaGguf.Output)
                {
                    Array.Clear(values);
                    for (int i = 0; i + 1 < chain.Count; i++)
                    {
                        // RMSNorm turns the one-hot embedding into √dim on its axis: 8 · 10 = 80.
                        values[chain[i + 1] * dim + i] = 10f;
                    }
                }
            }, chatTemplate);
        }
    }
}
