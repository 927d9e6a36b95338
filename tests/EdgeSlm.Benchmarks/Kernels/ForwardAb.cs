using System.Diagnostics;
using System.Globalization;
using EdgeSlm.Benchmarks.Embed;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Benchmarks.Kernels;

/// <summary>
/// Whole forward passes on two kernel paths in one process: two encoders over the same memory-mapped model, 1
/// thread, on the embed benchmark's utterances of 9 to 12 tokens; each round embeds every utterance once with A and
/// once with B, in alternating order. Prints minimum and median µs per utterance (the minimum is the least disturbed
/// by neighbours on a shared machine).
/// </summary>
internal static class ForwardAb
{
    public static int Run(KernelPath a, KernelPath b, int rounds)
    {
        using BertModel model = BertModel.Load(EmbedBenchmark.ConvertDefaultModel());
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        int[][] utterances = EmbedBenchmark.Utterances(200).Select(s => tokenizer.Encode(s))
            .Where(ids => ids.Length is >= 9 and <= 12).ToArray();
        var embeddingA = new float[model.Config.HiddenSize];
        var embeddingB = new float[model.Config.HiddenSize];
        int[] length = new int[1];
        using var encoderA = new BertEncoder(model, 1, a);
        using var encoderB = new BertEncoder(model, 1, b);
        double EmbedAll(BertEncoder encoder, float[] embedding)
        {
            long start = Stopwatch.GetTimestamp();
            foreach (int[] ids in utterances)
            {
                length[0] = ids.Length;
                encoder.Encode(ids, length, embedding);
            }
            return Stopwatch.GetElapsedTime(start).TotalMicroseconds / utterances.Length;
        }
        for (int i = 0; i < 3; i++)
        {
            EmbedAll(encoderA, embeddingA);
            EmbedAll(encoderB, embeddingB);
        }
        double cosine = embeddingA.Zip(embeddingB, (x, y) => (double)x * y).Sum()
            / Math.Sqrt(embeddingA.Sum(x => (double)x * x) * embeddingB.Sum(x => (double)x * x));

        var ta = new double[rounds];
        var tb = new double[rounds];
        for (int round = 0; round < rounds; round++)
        {
            if (round % 2 == 0)
            {
                ta[round] = EmbedAll(encoderA, embeddingA);
                tb[round] = EmbedAll(encoderB, embeddingB);
            }
            else
            {
                tb[round] = EmbedAll(encoderB, embeddingB);
                ta[round] = EmbedAll(encoderA, embeddingA);
            }
        }
        Array.Sort(ta);
        Array.Sort(tb);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"forward pass, {utterances.Length} utterances of 9-12 tokens, 1 thread, {rounds} rounds: A ({KernelPaths.Name(a)}) min {ta[0]:F1} med {ta[rounds / 2]:F1} µs | B ({KernelPaths.Name(b)}) min {tb[0]:F1} med {tb[rounds / 2]:F1} µs | B/A min {tb[0] / ta[0]:F3} med {tb[rounds / 2] / ta[rounds / 2]:F3} | last embeddings' cosine {cosine:F6}"));
        Console.WriteLine($"load average: {File.ReadAllText("/proc/loadavg").Trim()}");
        return 0;
    }
}
